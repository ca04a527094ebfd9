"""ECG: QRS detection accuracy on the annotated MIT-BIH records, and streaming latency.

Figures: qrs_sensitivity and qrs_ppv over all records in --data-dir that have reference
beat annotations (.atr), matched beat by beat with the 150 ms window (wfdb
compare_annotations, as EC57/bxb); per record qrs_sensitivity_<rec> / qrs_ppv_<rec>;
qrs_detect_s_per_hour (detector cost); and ecg_stream_latency_p99_s from the ECG stream
connector's own measurement (connectors.ecg_stream.bench.measure_stream_latency) when it
is installed.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import time
from pathlib import Path

from hub.bench import Figure
from hub.logs import get_logger

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "wfdb"
log = get_logger("bench.ecg")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="folder of WFDB records with .atr annotations")
    parser.add_argument("--annotator", default="atr", help="reference annotation extension (default atr)")
    parser.add_argument("--skip-stream", action="store_true", help="leave out ecg_stream_latency_p99_s")


def score_records(data_dir: Path, annotator: str = "atr") -> tuple[list[tuple[str, object]], float, float]:
    """[(record name, QrsScore)], seconds of signal, seconds spent detecting."""
    from connectors.ecg.wfdb_format import read_wfdb
    from hub.ecg.analysis import detect_record_qrs, reference_beats, score_qrs

    results, signal_s, spent = [], 0.0, 0.0
    for ann in sorted(data_dir.glob(f"*.{annotator}")):
        record = read_wfdb(ann.with_suffix(".hea"), annotation_extension=annotator)
        reference = reference_beats(record)
        if not len(reference):
            continue
        started = time.perf_counter()
        peaks = detect_record_qrs(record)
        spent += time.perf_counter() - started
        signal_s += record.duration_s
        results.append((ann.stem, score_qrs(reference, peaks, record.sample_rate)))
    return results, signal_s, spent


def run(args: argparse.Namespace) -> list[Figure]:
    results, signal_s, spent = score_records(Path(args.data_dir), args.annotator)
    if not results:
        raise SystemExit(f"no WFDB records with .{args.annotator} beat annotations in {args.data_dir}")
    total = results[0][1]
    for _, score in results[1:]:
        total = total + score
    figures = [
        Figure("qrs_sensitivity", total.sensitivity, "ratio"),
        Figure("qrs_ppv", total.positive_predictivity, "ratio"),
        Figure("qrs_reference_beats", total.reference, "count"),
        Figure("qrs_records", len(results), "count"),
        Figure("qrs_detect_s_per_hour", spent / signal_s * 3600.0, "s"),
    ]
    for name, score in results:
        figures.append(Figure(f"qrs_sensitivity_{name}", score.sensitivity, "ratio"))
        figures.append(Figure(f"qrs_ppv_{name}", score.positive_predictivity, "ratio"))
    if not args.skip_stream:
        latency = stream_latency_p99()
        if latency is not None:
            figures.append(Figure("ecg_stream_latency_p99_s", latency, "s"))
    return figures


def stream_latency_p99() -> float | None:
    """p99 sample-time-to-sink latency from the ECG stream connector's benchmark, if it is installed
    (`connectors.ecg_stream.bench.measure_stream_latency()`, plain or async, returning a mapping or an
    object with `p99_s`, or the number itself)."""
    measure = None
    for name in ("connectors.ecg_stream.bench", "connectors.ecg_stream.harness"):
        try:
            measure = getattr(importlib.import_module(name), "measure_stream_latency", None)
        except ModuleNotFoundError as exc:
            if not (exc.name or "").startswith("connectors.ecg_stream"):
                raise
        if measure is not None:
            break
    if measure is None:
        log.warning("ecg stream benchmark not available; ecg_stream_latency_p99_s left out")
        return None
    result = measure()
    if inspect.isawaitable(result):
        result = asyncio.run(result)
    value = result.get("p99_s") if isinstance(result, dict) else getattr(result, "p99_s", result)
    return float(value)
