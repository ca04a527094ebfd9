"""Holter report as HTML or PDF, from the stored result and its pictures.

Templates: `summary` (one page: conclusion, key figures, heart-rate trend), `standard` (+ HRV,
pauses, AF and the representative strips), `detailed` (+ hourly heart rate, every pause and AF
episode listed, the settings used). PDF pages are drawn with matplotlib's PdfPages (no extra
dependency); HTML embeds the PNGs as data URIs, so both are single self-contained files.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.image as mpimg
import matplotlib.pyplot as plt
from matplotlib.backends.backend_pdf import PdfPages

from hub.holter.images import format_offset

TEMPLATES = ("standard", "detailed", "summary")
A4 = (8.27, 11.69)


def _fmt(value, digits: int = 1, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}{(' ' + unit) if unit else ''}"
    return f"{value}{(' ' + unit) if unit else ''}"


def key_rows(result: dict) -> list[tuple[str, str]]:
    s, hr, p, af = result["summary"], result["heart_rate"], result["pauses"], result["atrial_fibrillation"]
    dist = hr.get("distribution_percent") or {}
    rows = [
        ("Recording / analysable", (f"{format_offset(s['recording_duration_s'])} / {format_offset(s['analysable_duration_s'])} "
                                    f"({_fmt(s['data_quality']['analysable_percent'])} %)")),
        ("Format, rate, leads", f"{s['format']}, {s['sampling_rate']:g} Hz, {', '.join(s['leads'])} (beats on {s['detection_lead']})"),
        ("Total beats", _fmt(hr["total_beats"])),
        ("Mean heart rate", _fmt(hr["mean_bpm"], 0, "/min")),
        ("Max heart rate", f"{_fmt(hr['max_bpm'], 0, '/min')} at {format_offset(hr['max_time_s'] or 0)}"),
        ("Min heart rate", f"{_fmt(hr['min_bpm'], 0, '/min')} at {format_offset(hr['min_time_s'] or 0)}"),
        ("HR distribution", f"<60: {_fmt(dist.get('below_brady'))} %, 60-100: {_fmt(dist.get('normal'))} %, >100: {_fmt(dist.get('above_tachy'))} %"),
        ("Pauses", f"{p['count']} (>= {p['threshold_s']:g} s)" + (f", longest {p['longest_s']:.2f} s at {format_offset(p['longest_time_s'])}" if p["count"] else "")),
        ("Atrial fibrillation", f"{af.get('episodes', 'n/a')} episode(s), {_fmt(af.get('total_duration_s'), 0, 's')}, burden {_fmt(af.get('burden_percent'))} %"
         if "episodes" in af else af.get("reason", "n/a")),
        ("Ectopy", result["ectopy"]["reason"]),
        ("ST segment", result["st_analysis"]["reason"]),
    ]
    return rows


def hrv_rows(result: dict) -> list[tuple[str, str]]:
    hrv = result["hrv"]
    if "time_domain" not in hrv:
        return [("HRV", hrv.get("reason", "n/a"))]
    t, f = hrv["time_domain"], hrv["frequency_domain"]
    return [
        ("SDNN / SDANN / SDNN index", f"{_fmt(t['sdnn_ms'])} / {_fmt(t['sdann_ms'])} / {_fmt(t['sdnn_index_ms'])} ms"),
        ("RMSSD / pNN50", f"{_fmt(t['rmssd_ms'])} ms / {_fmt(t['pnn50_percent'])} %"),
        ("Total / VLF / LF / HF power", f"{_fmt(f['total_power_ms2'], 0)} / {_fmt(f['vlf_ms2'], 0)} / {_fmt(f['lf_ms2'], 0)} / {_fmt(f['hf_ms2'], 0)} ms²"),
        ("LF/HF", _fmt(f["lf_hf_ratio"], 2)),
    ]


def detail_rows(result: dict) -> list[tuple[str, str]]:
    rows = []
    trend = result["heart_rate"]["trend"]
    per_hour: dict[int, list[float]] = {}
    for t, bpm in trend:
        if bpm is not None:
            per_hour.setdefault(int(t // 3600), []).append(bpm)
    for hour, values in sorted(per_hour.items()):
        rows.append((f"Hour {hour + 1}", f"mean {sum(values) / len(values):.0f}/min, min {min(values):.0f}, max {max(values):.0f}"))
    for e in result["pauses"]["episodes"][:20]:
        rows.append(("Pause", f"{e['duration_s']:.2f} s at {format_offset(e['time_s'])}"))
    for e in result["atrial_fibrillation"].get("list", [])[:20]:
        rows.append(("AF episode", f"{format_offset(e['start_s'])} - {format_offset(e['end_s'])} ({e['duration_s']:.0f} s)"))
    rows += [(k, str(v)) for k, v in result.get("settings", {}).items()]
    return rows


def _conclusion(result: dict) -> tuple[str, str]:
    r = result["reviewer"]
    if r.get("conclusion"):
        return r["conclusion"], f"reviewed by {r.get('reviewer') or 'physician'}" + (" (amended)" if r.get("amended") else " (confirmed)")
    return result["summary"]["conclusion"], "automatic analysis" + (" - awaiting physician review" if r.get("required") else "")


def render_html(result: dict, images: Path, template: str) -> str:
    conclusion, source = _conclusion(result)
    rows = key_rows(result) + (hrv_rows(result) if template != "summary" else []) + (detail_rows(result) if template == "detailed" else [])
    table = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Holter report {html.escape(result['task_id'])}</title>",
             ("<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto}th{text-align:left;padding-right:1em}"
              "img{max-width:100%}</style></head><body>"),
             f"<h1>Long-term ECG (Holter) report</h1><p>Task {html.escape(result['task_id'])} - template {template}</p>",
             f"<h2>Conclusion</h2><p>{html.escape(conclusion)}</p><p><em>{html.escape(source)}</em></p>",
             f"<h2>Findings</h2><table>{table}</table>", "<h2>Heart-rate trend</h2>", _img(images / "hr_trend.png")]
    if template != "summary":
        parts.append("<h2>Representative strips</h2>")
        for strip in result["strips"]:
            parts.append(f"<h3>{html.escape(strip['label'])} at {format_offset(strip['start_s'])}</h3>")
            parts.append(_img(images / Path(strip["image_url"]).name))
    parts.append("</body></html>")
    return "".join(parts)


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode() if path.exists() else ""
    return f"<img alt='{html.escape(path.stem)}' src='data:image/png;base64,{data}'>"


def render_pdf(result: dict, images: Path, template: str) -> bytes:
    buf = io.BytesIO()
    conclusion, source = _conclusion(result)
    with PdfPages(buf, metadata={"Title": f"Holter report {result['task_id']}", "Creator": "DeviceSync Hub"}) as pdf:
        fig = plt.figure(figsize=A4)
        fig.text(0.07, 0.955, "Long-term ECG (Holter) report", fontsize=17, weight="bold")
        fig.text(0.07, 0.935, f"Task {result['task_id']}   template: {template}", fontsize=9, color="0.3")
        fig.text(0.07, 0.905, "Conclusion", fontsize=12, weight="bold")
        fig.text(0.07, 0.895, _wrap(conclusion, 95) + f"\n({source})", fontsize=9, va="top")
        rows = key_rows(result) + (hrv_rows(result) if template != "summary" else [])
        y = 0.80
        for k, v in rows:
            fig.text(0.07, y, k, fontsize=8.5, weight="bold", va="top")
            fig.text(0.33, y, _wrap(v, 75), fontsize=8.5, va="top")
            y -= 0.021 * (1 + _wrap(v, 75).count("\n"))
        _image_axes(fig, images / "hr_trend.png", [0.05, max(0.03, y - 0.27), 0.9, 0.25])
        pdf.savefig(fig)
        plt.close(fig)
        if template != "summary":
            _strip_pages(pdf, result, images)
        if template == "detailed":
            fig = plt.figure(figsize=A4)
            fig.text(0.07, 0.955, "Details", fontsize=14, weight="bold")
            y = 0.92
            for k, v in detail_rows(result)[:60]:
                fig.text(0.07, y, k, fontsize=8.5, weight="bold", va="top")
                fig.text(0.33, y, v, fontsize=8.5, va="top")
                y -= 0.0145
            pdf.savefig(fig)
            plt.close(fig)
    return buf.getvalue()


def _strip_pages(pdf: PdfPages, result: dict, images: Path) -> None:
    strips = result["strips"]
    for first in range(0, len(strips), 3):
        fig = plt.figure(figsize=A4)
        fig.text(0.07, 0.965, "Representative strips", fontsize=14, weight="bold")
        for i, strip in enumerate(strips[first:first + 3]):
            top = 0.93 - i * 0.31
            fig.text(0.07, top, f"{strip['label']} at {format_offset(strip['start_s'])}", fontsize=10, weight="bold")
            _image_axes(fig, images / Path(strip["image_url"]).name, [0.03, top - 0.29, 0.94, 0.28])
        pdf.savefig(fig)
        plt.close(fig)


def _image_axes(fig, path: Path, rect: list[float]) -> None:
    ax = fig.add_axes(rect)
    ax.axis("off")
    if path.exists():
        ax.imshow(mpimg.imread(path))


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width)) or text
