"""Pictures of a Holter result: ECG strips (hub.ecg.plot.plot_strip on a window read from the
recording) and the heart-rate trend. Matplotlib (Agg); no patient identifiers drawn."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from connectors.ecg.model import EcgRecord, Lead
from hub.ecg.plot import plot_strip
from hub.holter.stream import Recording


def window_record(rec: Recording, start: int, stop: int) -> EcgRecord:
    """Samples [start, stop) of all leads as an EcgRecord (1 µV resolution) for plotting."""
    mv = rec.read(start, stop)
    leads = tuple(Lead(name, np.rint(mv[:, i] * 1000.0).astype(np.int32), 0.001, 0.0, "mV") for i, name in enumerate(rec.lead_names))
    return EcgRecord(leads=leads, sample_rate=rec.sample_rate, source_format=rec.format)


def render_strip(rec: Recording, start_s: float, seconds: float, beats: np.ndarray, label: str, out: Path) -> Path:
    first = round(start_s * rec.sample_rate)
    last = min(rec.n_samples, first + round(seconds * rec.sample_rate))
    window = window_record(rec, first, last)
    local = np.asarray(beats, dtype=np.int64)
    local = local[(local >= first) & (local < last)] - first
    title = f"{label}: {format_offset(start_s)} (+{seconds:g} s)  {rec.sample_rate:g} Hz  25 mm/s  10 mm/mV  (green: detected beats)"
    return plot_strip(window, out, seconds=seconds, leads=window.lead_names[:3], peaks=local, title=title, dpi=90)


def render_trend(trend: list[list[float | None]], out: Path, *, pauses: list[dict] | None = None) -> Path:
    t = np.array([row[0] for row in trend], dtype=float) / 3600.0
    bpm = np.array([np.nan if row[1] is None else row[1] for row in trend], dtype=float)
    fig, ax = plt.subplots(figsize=(9.5, 3.0), dpi=100)
    ax.plot(t, bpm, color="tab:red", linewidth=1.0)
    for p in pauses or []:
        ax.axvline(p["time_s"] / 3600.0, color="tab:blue", linewidth=0.6, alpha=0.6)
    ax.axhspan(60, 100, color="tab:green", alpha=0.07)
    ax.set_xlabel("time from start (h)")
    ax.set_ylabel("heart rate (1/min)")
    ax.set_title("Heart-rate trend (mean per bin; blue lines: pauses)", fontsize=10)
    ax.grid(alpha=0.3)
    if len(t):
        ax.set_xlim(0, max(t.max(), 1 / 60))
    finite = bpm[np.isfinite(bpm)]
    if len(finite):
        ax.set_ylim(max(0, finite.min() - 15), finite.max() + 15)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, facecolor="white")
    plt.close(fig)
    return out


def format_offset(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"
