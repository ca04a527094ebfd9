"""Heart rate, pauses and data quality from a beat list: pure functions (no I/O).

Beats are R-peak sample indices; `good` holds one flag per quality window (True = analysable).
An RR interval is *usable* when both its beats lie in analysable windows; heart-rate figures
use usable intervals in [min_rr_s, max_rr_s]; a pause is a usable interval of at least
`pause_threshold_s`. The same functions run on detected beats and on reference annotations,
which is how the accuracy test compares them.
"""

from __future__ import annotations

import numpy as np

from hub.holter.settings import HolterSettings


def window_flags(signal_mv: np.ndarray, fs: float, window_s: float, flat_ptp_mv: float, max_ptp_mv: float) -> np.ndarray:
    """One flag per whole-or-partial window of `signal_mv`: analysable (not flat, not implausible, finite)."""
    size = max(1, round(window_s * fs))
    n = len(signal_mv)
    flags = []
    for start in range(0, n, size):
        part = signal_mv[start:start + size]
        if not np.isfinite(part).all():
            flags.append(False)
            continue
        ptp = float(np.ptp(part)) if len(part) else 0.0
        flags.append(flat_ptp_mv <= ptp <= max_ptp_mv)
    return np.array(flags, dtype=bool)


def usable_intervals(beats: np.ndarray, fs: float, good: np.ndarray, window_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(start time s, RR s, usable flag) for each interval between consecutive beats."""
    beats = np.asarray(beats, dtype=np.int64)
    t = beats / float(fs)
    rr = np.diff(t)
    if len(good) == 0:
        return t[:-1], rr, np.zeros(len(rr), dtype=bool)
    w = np.minimum((t / window_s).astype(np.int64), len(good) - 1)
    beat_good = good[w]
    return t[:-1], rr, beat_good[:-1] & beat_good[1:]


def heart_rate_stats(beats: np.ndarray, fs: float, good: np.ndarray, s: HolterSettings) -> dict:
    t0, rr, ok = usable_intervals(beats, fs, good, s.quality_window_s)
    use = ok & (rr >= s.min_rr_s) & (rr <= s.max_rr_s)
    out: dict = {"total_beats": len(beats), "mean_bpm": None, "max_bpm": None, "max_time_s": None,
                 "min_bpm": None, "min_time_s": None, "distribution_percent": None}
    if not use.any():
        return out
    rr_u, t_u = rr[use], t0[use]
    out["mean_bpm"] = 60.0 / float(rr_u.mean())
    bins, bpm, covered = trend_bins(t_u, rr_u, s.hr_bin_s)
    valid = covered >= s.hr_bin_min_coverage * s.hr_bin_s
    if valid.any():
        hi, lo = int(np.argmax(np.where(valid, bpm, -np.inf))), int(np.argmin(np.where(valid, bpm, np.inf)))
        out.update(max_bpm=float(bpm[hi]), max_time_s=float(bins[hi]), min_bpm=float(bpm[lo]), min_time_s=float(bins[lo]))
    inst = 60.0 / rr_u
    total = float(rr_u.sum())
    out["distribution_percent"] = {
        "below_brady": 100.0 * float(rr_u[inst < s.brady_bpm].sum()) / total,
        "normal": 100.0 * float(rr_u[(inst >= s.brady_bpm) & (inst <= s.tachy_bpm)].sum()) / total,
        "above_tachy": 100.0 * float(rr_u[inst > s.tachy_bpm].sum()) / total,
        "brady_bpm": s.brady_bpm, "tachy_bpm": s.tachy_bpm,
    }
    return out


def trend_bins(t: np.ndarray, rr: np.ndarray, bin_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per bin (by interval start time): bin start s, mean HR (60 / mean RR), seconds covered by intervals."""
    if len(t) == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    index = (t // bin_s).astype(np.int64)
    n = int(index.max()) + 1
    count = np.bincount(index, minlength=n)
    total = np.bincount(index, weights=rr, minlength=n)
    present = count > 0
    bpm = np.full(n, np.nan)
    bpm[present] = 60.0 * count[present] / total[present]
    return np.arange(n) * bin_s, bpm, total


def hr_trend(beats: np.ndarray, fs: float, good: np.ndarray, s: HolterSettings) -> list[list[float | None]]:
    """[[bin start s, mean bpm or None (bin too sparsely covered)], ...] for the trend plot and the result."""
    t0, rr, ok = usable_intervals(beats, fs, good, s.quality_window_s)
    use = ok & (rr >= s.min_rr_s) & (rr <= s.max_rr_s)
    bins, bpm, covered = trend_bins(t0[use], rr[use], s.hr_bin_s)
    shown = np.isfinite(bpm) & (covered >= s.hr_bin_min_coverage * s.hr_bin_s)
    return [[float(b), round(float(v), 2) if ok else None] for b, v, ok in zip(bins, bpm, shown)]


def find_pauses(beats: np.ndarray, fs: float, good: np.ndarray, s: HolterSettings, *, listed: int = 50) -> dict:
    t0, rr, ok = usable_intervals(beats, fs, good, s.quality_window_s)
    hit = ok & (rr >= s.pause_threshold_s)
    out = {"threshold_s": s.pause_threshold_s, "count": int(hit.sum()), "longest_s": None, "longest_time_s": None, "longest_rr_s": None,
           "episodes": []}
    usable = rr[ok]
    if len(usable):
        out["longest_rr_s"] = float(usable.max())  # longest usable RR, reported even below the threshold
    if hit.any():
        i = int(np.argmax(np.where(hit, rr, -np.inf)))
        out.update(longest_s=float(rr[i]), longest_time_s=float(t0[i]))
        out["episodes"] = [{"time_s": float(a), "duration_s": float(b)} for a, b in zip(t0[hit][:listed], rr[hit][:listed])]
    return out


def data_quality(good: np.ndarray, window_s: float, duration_s: float) -> dict:
    bad = int((~good).sum())
    analysable = max(0.0, duration_s - bad * window_s)
    return {
        "recording_s": duration_s,
        "analysable_s": analysable,
        "analysable_percent": 100.0 * analysable / duration_s if duration_s else 0.0,
        "unanalysable_windows": bad,
        "window_s": window_s,
        "checks": "flat line (lead off), implausible amplitude, non-finite samples; per window",
    }
