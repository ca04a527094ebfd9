"""ECG strip plot on standard ECG paper (25 mm/s, 10 mm/mV) as a PNG, with matplotlib (Agg).

Small squares are 1 mm (0.04 s, 0.1 mV), large squares 5 mm (0.2 s, 0.5 mV). Each lead gets
a row of 30 mm (3 mV); leads that are not voltages (PLETH, RESP) are scaled to fill 2/3 of
their row and labelled as such. Beat annotations and detected R peaks are marked with ticks.
No patient identifiers are drawn.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from connectors.ecg.model import UNIT_TO_UV, EcgRecord

MM_PER_S = 25.0
MM_PER_MV = 10.0
ROW_MM = 30.0
MM_PER_INCH = 25.4
MINOR_COLOUR, MAJOR_COLOUR = "#f6c4c4", "#e58a8a"


def plot_strip(record: EcgRecord, out: str | Path, *, start_s: float = 0.0, seconds: float = 10.0,
               leads: list[str] | None = None, peaks: np.ndarray | None = None, title: str | None = None,
               dpi: int = 100) -> Path:
    """Draw `seconds` of `leads` (default: all, at most 12) from `start_s` to `out` (PNG)."""
    chosen = [record.lead(name) for name in leads] if leads else list(record.leads[:12])
    if not chosen:
        raise ValueError("record has no leads to plot")
    first = max(0, int(round(start_s * record.sample_rate)))
    last = min(record.n_samples, first + int(round(seconds * record.sample_rate)))
    if last <= first:
        raise ValueError(f"window {start_s}s+{seconds}s is outside the record ({record.duration_s:.1f} s)")
    width_mm = (last - first) / record.sample_rate * MM_PER_S
    height_mm = ROW_MM * len(chosen)
    fig = plt.figure(figsize=((width_mm + 20) / MM_PER_INCH, (height_mm + 14) / MM_PER_INCH), dpi=dpi)
    ax = fig.add_axes([10 / (width_mm + 20), 4 / (height_mm + 14), width_mm / (width_mm + 20), height_mm / (height_mm + 14)])
    _draw_grid(ax, width_mm, height_mm)
    t_mm = (np.arange(first, last) - first) / record.sample_rate * MM_PER_S
    for row, lead in enumerate(chosen):
        centre = height_mm - ROW_MM * (row + 0.5)
        y, label = _trace_mm(lead, first, last)
        ax.plot(t_mm, centre + y, color="black", linewidth=0.7)
        ax.text(1, centre + ROW_MM * 0.32, label, fontsize=9, fontweight="bold", va="center")
    _draw_marks(ax, record, first, last, height_mm, peaks)
    ax.set_xlim(0, width_mm)
    ax.set_ylim(0, height_mm)
    ax.set_xticks([])
    ax.set_yticks([])
    heading = title or (f"{record.source_format or 'ECG'}  {record.sample_rate:g} Hz  "
                        f"{start_s:g}-{start_s + (last - first) / record.sample_rate:g} s  25 mm/s  10 mm/mV")
    fig.text(10 / (width_mm + 20), 1 - 3 / (height_mm + 14), heading, fontsize=9, va="center")
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, facecolor="white")
    plt.close(fig)
    return path


def _trace_mm(lead, first: int, last: int) -> tuple[np.ndarray, str]:
    if lead.unit.lower() in UNIT_TO_UV:
        mv = lead.microvolts()[first:last] / 1000.0
        mv = mv - np.median(mv)  # centre the trace in its row (display only)
        return np.clip(mv * MM_PER_MV, -ROW_MM, ROW_MM), lead.name  # may overlap the next row, as on paper
    values = lead.physical()[first:last]
    span = float(np.ptp(values)) or 1.0
    return (values - float(np.mean(values))) / span * (ROW_MM * 2 / 3), f"{lead.name} ({lead.unit}, scaled)"


def _draw_grid(ax, width_mm: float, height_mm: float) -> None:
    for x in np.arange(0, width_mm + 0.01, 1.0):
        major = round(x) % 5 == 0
        ax.axvline(x, color=MAJOR_COLOUR if major else MINOR_COLOUR, linewidth=0.6 if major else 0.3, zorder=0)
    for y in np.arange(0, height_mm + 0.01, 1.0):
        major = round(y) % 5 == 0
        ax.axhline(y, color=MAJOR_COLOUR if major else MINOR_COLOUR, linewidth=0.6 if major else 0.3, zorder=0)


def _draw_marks(ax, record: EcgRecord, first: int, last: int, height_mm: float, peaks: np.ndarray | None) -> None:
    beats = [a.sample for a in record.annotations if first <= a.sample < last and len(a.code) == 1 and a.code.isalpha()]
    for sample in beats:
        x = (sample - first) / record.sample_rate * MM_PER_S
        ax.plot([x, x], [height_mm - 2.5, height_mm], color="tab:blue", linewidth=1.0)
    if peaks is not None:
        for sample in np.asarray(peaks)[(np.asarray(peaks) >= first) & (np.asarray(peaks) < last)]:
            x = (sample - first) / record.sample_rate * MM_PER_S
            ax.plot([x, x], [0, 2.5], color="tab:green", linewidth=1.0)
