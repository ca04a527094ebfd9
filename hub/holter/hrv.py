"""Heart-rate variability and atrial fibrillation from RR intervals: pure functions.

NN intervals: usable RR intervals (both beats analysable) within [nn_min_s, nn_max_s] that differ
from the previous accepted interval by at most `nn_max_change` (a common artefact/ectopy filter;
without a beat classifier every beat is a candidate "normal" beat; the result says so).

Time domain (Task Force of the ESC/NASPE 1996): SDNN, SDANN and SDNN index over `hrv_segment_s`
segments, RMSSD and pNN50 over successive NN pairs. Frequency domain: Lomb-Scargle spectrum of
the NN series against beat time (Scargle 1982, no resampling; Laguna et al. 1998), scaled so the band powers
add up to the NN variance (Parseval): VLF 0.0033-0.04 Hz, LF 0.04-0.15 Hz, HF 0.15-0.4 Hz, in ms^2.

AF: Dash S, Chon KH, Lu S, Raeder EA. "Automatic real time detection of atrial fibrillation."
Ann Biomed Eng 2009;37(9):1701-9. Each window of `af_window_beats` RR intervals is AF when the
normalised RMSSD (after removing the `af_trim` largest and smallest intervals) exceeds 0.1, the
Shannon entropy of the 16-bin RR histogram (normalised to [0, 1]) exceeds 0.7 and the
turning-point ratio lies in [0.54, 0.77] (what a random sequence gives). AF windows that overlap
merge into episodes; episodes shorter than `af_min_episode_s` are dropped.
"""

from __future__ import annotations

import numpy as np

from hub.holter.rhythm import usable_intervals
from hub.holter.settings import HolterSettings

BANDS = {"vlf": (0.0033, 0.04), "lf": (0.04, 0.15), "hf": (0.15, 0.4)}


def nn_intervals(beats: np.ndarray, fs: float, good: np.ndarray, s: HolterSettings) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(end time s, NN s, successive flag): `successive[i]` is True when NN[i-1] and NN[i] are adjacent intervals."""
    t0, rr, ok = usable_intervals(beats, fs, good, s.quality_window_s)
    keep = ok & (rr >= s.nn_min_s) & (rr <= s.nn_max_s)
    accepted = np.zeros(len(rr), dtype=bool)
    previous = None
    for i in np.flatnonzero(keep).tolist():
        if previous is None or abs(rr[i] - previous) <= s.nn_max_change * previous:
            accepted[i] = True
            previous = rr[i]
        # a rejected interval does not become the new reference, so one ectopic beat does not cascade
    idx = np.flatnonzero(accepted)
    successive = np.zeros(len(idx), dtype=bool)
    successive[1:] = np.diff(idx) == 1
    return t0[idx] + rr[idx], rr[idx], successive


PNN50_THRESHOLD_MS = 50.0
# Successive differences are differences of whole-sample intervals: at 360 Hz a difference of 18
# samples is exactly 50 ms, but (a/fs - b/fs) * 1000 lands on either side of 50.0 in binary
# floating point. Rounding to a nanosecond first keeps "more than 50 ms" exact.
_DIFF_DECIMALS_MS = 6


def pnn50_percent(diffs_ms: np.ndarray) -> float | None:
    """Share of successive NN differences strictly greater than 50 ms, in percent."""
    if not len(diffs_ms):
        return None
    return float(100.0 * np.mean(np.round(np.abs(diffs_ms), _DIFF_DECIMALS_MS) > PNN50_THRESHOLD_MS))


def hrv_time_domain(t: np.ndarray, nn: np.ndarray, successive: np.ndarray, s: HolterSettings) -> dict:
    if len(nn) < 3:
        return {"sdnn_ms": None, "sdann_ms": None, "sdnn_index_ms": None, "rmssd_ms": None, "pnn50_percent": None, "nn_count": len(nn)}
    ms = nn * 1000.0
    diffs = np.diff(ms)[successive[1:]]
    seg = (t // s.hrv_segment_s).astype(np.int64)
    means, sds = [], []
    for k in np.unique(seg):
        part = ms[seg == k]
        if part.sum() / 1000.0 >= s.hrv_segment_min_coverage * s.hrv_segment_s and len(part) > 2:
            means.append(part.mean())
            sds.append(part.std(ddof=1))
    return {
        "sdnn_ms": float(ms.std(ddof=1)),
        "sdann_ms": float(np.std(means, ddof=1)) if len(means) > 1 else None,
        "sdnn_index_ms": float(np.mean(sds)) if sds else None,
        "rmssd_ms": float(np.sqrt(np.mean(diffs**2))) if len(diffs) else None,
        "pnn50_percent": pnn50_percent(diffs),
        "nn_count": len(nn),
        "segments": len(means),
    }


def hrv_frequency_domain(t: np.ndarray, nn: np.ndarray, s: HolterSettings) -> dict:
    empty = {"total_power_ms2": None, "vlf_ms2": None, "lf_ms2": None, "hf_ms2": None, "lf_hf_ratio": None, "method": "lomb-scargle"}
    if len(nn) < 32:
        return empty
    ms = nn * 1000.0
    span = float(t[-1] - t[0])
    freqs = np.arange(BANDS["vlf"][0], BANDS["hf"][1] + s.lomb_step_hz / 2, s.lomb_step_hz)
    periodogram = lomb_power(t - t[0], ms - ms.mean(), freqs)
    # Parseval: a sinusoid of amplitude A (periodogram N*A^2/4) holds A^2/2 of variance; independent
    # frequencies are 1/span apart, the grid is lomb_step_hz apart.
    power = 2.0 * periodogram / len(ms) * (s.lomb_step_hz * span)
    bands = {name: float(power[(freqs >= lo) & (freqs < hi)].sum()) for name, (lo, hi) in BANDS.items()}
    return {
        "total_power_ms2": float(sum(bands.values())),
        "vlf_ms2": bands["vlf"], "lf_ms2": bands["lf"], "hf_ms2": bands["hf"],
        "lf_hf_ratio": bands["lf"] / bands["hf"] if bands["hf"] > 0 else None,
        "method": "lomb-scargle",
    }


def lomb_power(t: np.ndarray, y: np.ndarray, freqs: np.ndarray, *, cells: int = 400_000) -> np.ndarray:
    """Classic Lomb-Scargle periodogram (Scargle 1982, with the time offset tau) of mean-removed `y`
    at `freqs` (Hz), vectorised over blocks of frequencies so memory stays bounded (about
    `cells` x 8 bytes per temporary) for 24 h of beats. A sinusoid of amplitude A gives N*A^2/4."""
    out = np.empty(len(freqs))
    step = max(1, cells // max(1, len(t)))
    for i in range(0, len(freqs), step):
        w = 2 * np.pi * freqs[i:i + step, None]
        wt = w * t[None, :]
        c, s = np.cos(wt), np.sin(wt)
        wtau = 0.5 * np.arctan2((2 * s * c).sum(axis=1), (c * c - s * s).sum(axis=1))[:, None]
        ct, st = np.cos(wtau), np.sin(wtau)
        cos_ = c * ct + s * st
        sin_ = s * ct - c * st
        out[i:i + step] = 0.5 * ((cos_ @ y) ** 2 / (cos_ * cos_).sum(axis=1) + (sin_ @ y) ** 2 / (sin_ * sin_).sum(axis=1))
    return out


def af_window_is_af(rr: np.ndarray, s: HolterSettings) -> bool:
    """Dash et al. 2009 decision for one window of RR intervals (seconds)."""
    n = len(rr)
    trimmed = np.sort(rr)[s.af_trim:n - s.af_trim] if n > 2 * s.af_trim + 2 else np.sort(rr)
    mean = trimmed.mean()
    # nRMSSD over the successive differences of the window with the extremes removed (in time order)
    lo, hi = trimmed[0], trimmed[-1]
    kept = rr[(rr >= lo) & (rr <= hi)]
    nrmssd = float(np.sqrt(np.mean(np.diff(kept) ** 2)) / mean) if len(kept) > 1 else 0.0
    counts, _ = np.histogram(trimmed, bins=16)
    p = counts[counts > 0] / counts.sum()
    entropy = float(-(p * np.log(p)).sum() / np.log(16.0))
    middle = rr[1:-1]
    turning = ((middle > rr[:-2]) & (middle > rr[2:])) | ((middle < rr[:-2]) & (middle < rr[2:]))
    tpr = float(turning.sum()) / max(1, n - 2)
    return nrmssd > s.af_nrmssd_min and entropy > s.af_entropy_min and s.af_tpr_min <= tpr <= s.af_tpr_max


def detect_af(beats: np.ndarray, fs: float, good: np.ndarray, analysable_s: float, s: HolterSettings) -> dict:
    t0, rr, ok = usable_intervals(beats, fs, good, s.quality_window_s)
    spans: list[tuple[float, float]] = []
    w = s.af_window_beats
    for start in range(0, max(0, len(rr) - w + 1), s.af_step_beats):
        part_ok = ok[start:start + w]
        if not part_ok.all():
            continue
        if af_window_is_af(rr[start:start + w], s):
            spans.append((float(t0[start]), float(t0[start + w - 1] + rr[start + w - 1])))
    episodes = [e for e in merge_spans(spans) if e[1] - e[0] >= s.af_min_episode_s]
    total = float(sum(b - a for a, b in episodes))
    return {
        "method": "RR irregularity (Dash et al. 2009: nRMSSD, Shannon entropy, turning-point ratio)",
        "episodes": len(episodes),
        "total_duration_s": total,
        "longest_s": max((b - a for a, b in episodes), default=0.0),
        "burden_percent": 100.0 * total / analysable_s if analysable_s else 0.0,
        "list": [{"start_s": a, "end_s": b, "duration_s": b - a} for a, b in episodes[:100]],
    }


def merge_spans(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged
