"""`devsync ecg ...`: ECG files from the command line.

    devsync ecg convert IN OUT [--to FORMAT]       any readable format -> any writable one
    devsync ecg info FILE [--json]                 leads, rate, duration, start, patient, annotations
    devsync ecg detect FILE --out ANN [--lead L]   R peaks as a WFDB annotation file (e.g. out/100.qrs)
    devsync ecg plot FILE --out PNG [--start S --seconds N --leads I,II]

Other modules add `ecg` subcommands by exposing `register_ecg(ecg_subparsers)` and being
listed in ECG_SUBCOMMAND_MODULES (the watch folder lives in hub.commands.ecg_watch).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections import Counter
from pathlib import Path

from connectors.ecg import READERS, WRITERS, EcgFormatError, EcgWriteError, detect_format, read_ecg, write_ecg
from connectors.ecg.model import EcgRecord

ECG_SUBCOMMAND_MODULES = ["hub.commands.ecg_watch"]


def register(sub: argparse._SubParsersAction) -> None:
    ecg = sub.add_parser("ecg", help="ECG files: convert, info, detect R peaks, plot strips")
    cmds = ecg.add_subparsers(dest="ecg_command", required=True, metavar="ECG_COMMAND")

    p = cmds.add_parser("convert", help="convert an ECG file (format detected by content)")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--to", choices=sorted(WRITERS), help="output format (default: from OUT's extension)")
    p.add_argument("--encoding", choices=["IntValue", "BinaryData", "FileLink"], help="ecgAware waveform encoding")
    _add_read_options(p)
    p.set_defaults(func=cmd_convert)

    p = cmds.add_parser("info", help="print leads, rate, duration, start, patient and annotations")
    p.add_argument("file")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    _add_read_options(p)
    p.set_defaults(func=cmd_info)

    p = cmds.add_parser("detect", help="detect R peaks (XQRS) and write a WFDB annotation file")
    p.add_argument("file")
    p.add_argument("--out", required=True, help="annotation file, e.g. out/100.qrs (extension = annotator)")
    p.add_argument("--lead", help="lead to detect on (default: II, MLII, I, V5, ...)")
    _add_read_options(p)
    p.set_defaults(func=cmd_detect)

    p = cmds.add_parser("plot", help="draw a strip on ECG paper as PNG")
    p.add_argument("file")
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--start", type=float, default=0.0, help="start, seconds from the record start (default 0)")
    p.add_argument("--seconds", type=float, default=10.0, help="strip length in seconds (default 10)")
    p.add_argument("--leads", help="comma-separated leads (default: all, at most 12)")
    p.add_argument("--peaks", action="store_true", help="also mark R peaks detected by XQRS")
    _add_read_options(p)
    p.set_defaults(func=cmd_plot)

    for name in ECG_SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        if hasattr(module, "register_ecg"):
            module.register_ecg(cmds)


def _add_read_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="from_format", choices=sorted(READERS), help="input format (default: detected by content)")
    p.add_argument("--rate", type=float, help="sample rate for CSV files without a time column")


def _read(args: argparse.Namespace, path: str) -> EcgRecord:
    fmt = args.from_format or detect_format(path)
    options = {"sample_rate": args.rate} if fmt == "csv" and args.rate else {}
    return read_ecg(path, format=fmt, **options)


def _fail(exc: Exception) -> int:
    print(f"error: {exc}", file=sys.stderr)
    return 2


def cmd_convert(args: argparse.Namespace) -> int:
    try:
        record = _read(args, args.input)
        options = {"encoding": args.encoding} if args.encoding else {}
        written = write_ecg(record, args.output, args.to, **options)
    except (EcgFormatError, EcgWriteError) as exc:
        return _fail(exc)
    print(f"{args.input} ({record.source_format}) -> {written}: {len(record.leads)} leads, "
          f"{record.sample_rate:g} Hz, {record.duration_s:.1f} s")
    return 0


def describe(record: EcgRecord) -> dict:
    p = record.patient
    return {
        "format": record.source_format,
        "leads": record.lead_names,
        "sample_rate_hz": record.sample_rate,
        "samples_per_lead": record.n_samples,
        "duration_s": round(record.duration_s, 3),
        "start_time": record.start_time.isoformat() if record.start_time else None,
        "units": sorted({lead.unit for lead in record.leads}),
        "resolution": {lead.name: f"{lead.scale:.6g} {lead.unit}" for lead in record.leads},
        "patient": {"id": p.id, "name": p.name, "sex": p.sex, "birth_date": p.birth_date.isoformat() if p.birth_date else None,
                    "age_years": p.age_years},
        "device": {k: v for k, v in vars(record.device).items() if v},
        "annotations": len(record.annotations),
        "annotation_codes": dict(Counter(a.code for a in record.annotations).most_common(12)),
        "measurements": [f"{m.name}={m.value:g}{(' ' + m.unit) if m.unit else ''}" for m in record.measurements[:12]],
        "interpretation": list(record.interpretation),
    }


def cmd_info(args: argparse.Namespace) -> int:
    try:
        info = describe(_read(args, args.file))
    except (EcgFormatError, EcgWriteError) as exc:
        return _fail(exc)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    for key, value in info.items():
        if value not in (None, "", [], {}):
            print(f"{key:17} {', '.join(map(str, value)) if isinstance(value, list) else value}")
    return 0


def cmd_detect(args: argparse.Namespace) -> int:
    from connectors.ecg.wfdb_format import write_annotation_file
    from hub.ecg.analysis import detect_record_qrs, heart_rate_series, pick_lead, reference_beats, score_qrs

    try:
        record = _read(args, args.file)
        lead = pick_lead(record, args.lead)
    except (EcgFormatError, EcgWriteError, KeyError, ValueError) as exc:
        return _fail(exc)
    peaks = detect_record_qrs(record, lead.name)
    written = write_annotation_file(args.out, peaks, record.sample_rate)
    _, bpm = heart_rate_series(peaks, record.sample_rate)
    rate = f", median HR {float(_median(bpm)):.0f}/min" if len(bpm) else ""
    print(f"{len(peaks)} R peaks on lead {lead.name}{rate} -> {written}")
    reference = reference_beats(record)
    if len(reference):
        score = score_qrs(reference, peaks, record.sample_rate)
        print(f"against the record's {len(reference)} reference beats (150 ms window): "
              f"Se {score.sensitivity:.4f}  +P {score.positive_predictivity:.4f}  "
              f"(TP {score.true_positives}, FN {score.false_negatives}, FP {score.false_positives})")
    return 0


def _median(values) -> float:
    import numpy as np

    return float(np.median(values))


def cmd_plot(args: argparse.Namespace) -> int:
    from hub.ecg.analysis import detect_record_qrs
    from hub.ecg.plot import plot_strip

    try:
        record = _read(args, args.file)
        leads = [x.strip() for x in args.leads.split(",")] if args.leads else None
        peaks = detect_record_qrs(record) if args.peaks else None
        out = plot_strip(record, args.out, start_s=args.start, seconds=args.seconds, leads=leads, peaks=peaks)
    except (EcgFormatError, EcgWriteError, KeyError, ValueError) as exc:
        return _fail(exc)
    print(f"strip {args.start:g}-{args.start + args.seconds:g} s of {Path(args.file).name} -> {out}")
    return 0
