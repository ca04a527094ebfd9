"""Streaming Holter analysis: chunked QRS detection with overlap, checkpointed so a restarted job
resumes at the next chunk, then the figures (heart rate, pauses, AF, HRV, data quality).

Memory is bounded by one chunk (`chunk_s` plus `overlap_s` on each side) and the beat list
(8 bytes per beat: about 1 MB for 24 h). Checkpoint files in the job's work folder:
`beats.i64` (R peaks, absolute samples), `quality.u8` (one flag per quality window) and
`progress.json` (chunks done and the two files' lengths, written after the data, atomically),
so a crash between the two leaves extra bytes that the resume truncates away.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hub.holter import hrv, rhythm
from hub.holter.detect import detect_chunk_qrs, merge_close_peaks
from hub.holter.settings import HolterSettings
from hub.holter.stream import Recording

REFRACTORY_S = 0.2  # two detections closer than this are one beat (seen by two chunks)
NOT_ANALYSED = {
    "ectopy": "not analysed: no validated beat classifier (supraventricular/ventricular) is available in this service; "
              "counts are not estimated",
    "st": "not analysed: ST-segment analysis is not implemented (needs beat classification and baseline/J-point measurement)",
    "pacemaker": "not analysed: pacemaker spike detection needs high-rate raw data and is not implemented",
}


@dataclass(frozen=True)
class ChunkPlan:
    chunk: int  # samples per chunk (a whole number of quality windows)
    overlap: int
    window: int  # samples per quality window
    count: int  # chunks in the recording


def plan_chunks(n_samples: int, fs: float, s: HolterSettings) -> ChunkPlan:
    window = max(1, round(s.quality_window_s * fs))
    chunk = max(1, round(s.chunk_s / s.quality_window_s)) * window
    return ChunkPlan(chunk, round(s.overlap_s * fs), window, max(1, -(-n_samples // chunk)))


def analyse_stream(rec: Recording, s: HolterSettings, work: Path, *,
                   on_chunk: Callable[[int, int], None] = lambda done, total: None,
                   on_resume: Callable[[int, int], None] = lambda done, total: None) -> tuple[np.ndarray, np.ndarray]:
    """Detect beats chunk by chunk (resuming from the checkpoint in `work`); returns (beats, good windows).

    `on_chunk(done, total)` runs after every checkpoint; it may raise to stop (cancel, lease lost).
    """
    work.mkdir(parents=True, exist_ok=True)
    plan = plan_chunks(rec.n_samples, rec.sample_rate, s)
    beats_path, quality_path, state_path = work / "beats.i64", work / "quality.u8", work / "progress.json"
    done = _resume(beats_path, quality_path, state_path)
    if done:
        on_resume(done, plan.count)
    lead = rec.detect_lead
    refractory = round(REFRACTORY_S * rec.sample_rate)
    for k in range(done, plan.count):
        start, stop = k * plan.chunk, min(rec.n_samples, (k + 1) * plan.chunk)
        lo, hi = max(0, start - plan.overlap), min(rec.n_samples, stop + plan.overlap)
        signal = rec.read(lo, hi)[:, lead].astype(np.float64)
        peaks = detect_chunk_qrs(signal, rec.sample_rate, keep_from=start, keep_to=stop, offset=lo)
        last = _last_beat(beats_path)
        if last is not None:
            peaks = peaks[peaks - last >= refractory]
        peaks = merge_close_peaks(peaks, refractory)
        flags = rhythm.window_flags(signal[start - lo:stop - lo], rec.sample_rate, s.quality_window_s, s.flat_ptp_mv, s.max_ptp_mv)
        _append(beats_path, peaks.astype("<i8").tobytes())
        _append(quality_path, flags.astype(np.uint8).tobytes())
        _write_state(state_path, k + 1, beats_path.stat().st_size, quality_path.stat().st_size)
        on_chunk(k + 1, plan.count)
    beats = np.fromfile(beats_path, dtype="<i8") if beats_path.exists() else np.zeros(0, dtype=np.int64)
    good = np.fromfile(quality_path, dtype=np.uint8).astype(bool) if quality_path.exists() else np.zeros(0, dtype=bool)
    return beats, good


def _resume(beats_path: Path, quality_path: Path, state_path: Path) -> int:
    if not state_path.exists():
        for p in (beats_path, quality_path):
            p.unlink(missing_ok=True)
        return 0
    state = json.loads(state_path.read_text())
    for p, size in ((beats_path, state["beats_bytes"]), (quality_path, state["quality_bytes"])):
        with open(p, "r+b" if p.exists() else "wb") as f:
            f.truncate(size)
    return int(state["chunks_done"])


def _last_beat(path: Path) -> int | None:
    if not path.exists() or path.stat().st_size < 8:
        return None
    with open(path, "rb") as f:
        f.seek(-8, os.SEEK_END)
        return int(np.frombuffer(f.read(8), dtype="<i8")[0])


def _append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _write_state(path: Path, chunks_done: int, beats_bytes: int, quality_bytes: int) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"chunks_done": chunks_done, "beats_bytes": beats_bytes, "quality_bytes": quality_bytes}))
    os.replace(tmp, path)


def compute_figures(beats: np.ndarray, fs: float, good: np.ndarray, duration_s: float, s: HolterSettings) -> dict:
    """All beat-derived figures of a recording (pure: the same call runs on reference annotations)."""
    quality = rhythm.data_quality(good, s.quality_window_s, duration_s)
    t, nn, successive = hrv.nn_intervals(beats, fs, good, s)
    return {
        "quality": quality,
        "heart_rate": rhythm.heart_rate_stats(beats, fs, good, s),
        "pauses": rhythm.find_pauses(beats, fs, good, s),
        "atrial_fibrillation": hrv.detect_af(beats, fs, good, quality["analysable_s"], s),
        "hrv_time": hrv.hrv_time_domain(t, nn, successive, s),
        "hrv_frequency": hrv.hrv_frequency_domain(t, nn, s),
        "hr_trend": rhythm.hr_trend(beats, fs, good, s),
    }


def choose_strips(figures: dict, duration_s: float, s: HolterSettings) -> list[tuple[float, str]]:
    """Representative strips: (start s, label) at the fastest and slowest minute, the longest pause,
    the first AF episode, then evenly spaced ones, each centred where possible."""
    half = s.strip_s / 2
    wanted: list[tuple[float, str]] = []
    hr, pauses, af = figures["heart_rate"], figures["pauses"], figures["atrial_fibrillation"]
    if pauses.get("longest_time_s") is not None:
        wanted.append((pauses["longest_time_s"] + pauses["longest_s"] / 2 - half, "longest pause"))
    if af["list"]:
        wanted.append((af["list"][0]["start_s"], "atrial fibrillation (first episode)"))
    if hr.get("max_time_s") is not None:
        wanted.append((hr["max_time_s"] + s.hr_bin_s / 2 - half, "maximum heart rate"))
    if hr.get("min_time_s") is not None:
        wanted.append((hr["min_time_s"] + s.hr_bin_s / 2 - half, "minimum heart rate"))
    k = 1
    while len(wanted) < s.strips and k <= s.strips:
        wanted.append((duration_s * k / (s.strips + 1) - half, "sample"))
        k += 1
    last = max(0.0, duration_s - s.strip_s)
    return [(min(max(0.0, a), last), label) for a, label in wanted[: s.strips]]


def build_summary(rec: Recording, figures: dict, analysis_options: dict) -> dict:
    hr, pauses, af, q = figures["heart_rate"], figures["pauses"], figures["atrial_fibrillation"], figures["quality"]
    parts = []
    if hr["mean_bpm"] is not None:
        parts.append(f"Mean heart rate {hr['mean_bpm']:.0f}/min (min {hr['min_bpm'] or 0:.0f}, max {hr['max_bpm'] or 0:.0f}).")
    parts.append(f"{pauses['count']} pause(s) of {pauses['threshold_s']:g} s or longer"
                 + (f", longest {pauses['longest_s']:.1f} s." if pauses["count"] else "."))
    parts.append(f"{af['episodes']} atrial fibrillation episode(s) by RR irregularity" + (f", burden {af['burden_percent']:.1f} %." if af["episodes"] else "."))
    parts.append("Ectopy and ST segments not analysed.")
    return {
        "recording_duration_s": rec.duration_s,
        "analysable_duration_s": q["analysable_s"],
        "data_quality": q,
        "conclusion": " ".join(parts),
        "conclusion_source": "automatic",
        "format": rec.format,
        "sampling_rate": rec.sample_rate,
        "leads": rec.lead_names,
        "detection_lead": rec.lead_names[rec.detect_lead],
        "start_time": rec.start_time.isoformat() if rec.start_time else None,
        "notes": list(rec.notes),
    }
