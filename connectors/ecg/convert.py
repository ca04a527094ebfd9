"""Read any supported ECG file, write any writable format: the registry of readers and writers.

Modules are imported lazily (`"module:function"`), so reading a CSV does not load pydicom.
"""

from __future__ import annotations

import importlib
import struct
from pathlib import Path
from typing import Any

from connectors.ecg.detect import detect_format
from connectors.ecg.exceptions import EcgFormatError, EcgWriteError
from connectors.ecg.model import EcgRecord

# What third-party parsers (lxml, pydicom, numpy, wfdb, pyedflib) raise on damaged input (found by tests/fuzz).
DAMAGED_FILE_ERRORS = (ValueError, OSError, KeyError, IndexError, AttributeError, TypeError, EOFError,
                       OverflowError, ZeroDivisionError, struct.error)

READERS = {
    "wfdb": "connectors.ecg.wfdb_format:read_wfdb",
    "edf": "connectors.ecg.edf:read_edf",
    "csv": "connectors.ecg.csv_format:read_csv",
    "aecg": "connectors.ecg.aecg:read_aecg",
    "ecgaware": "connectors.ecg.ecgaware:read_ecgaware",
    "scp": "connectors.ecg.scp:read_scp",
    "dicom": "connectors.ecg.dicom_ecg:read_dicom",
    "philips": "connectors.ecg.philips:read_philips",
}
WRITERS = {
    "wfdb": "connectors.ecg.wfdb_format:write_wfdb",
    "edf": "connectors.ecg.edf:write_edf",
    "csv": "connectors.ecg.csv_format:write_csv",
    "aecg": "connectors.ecg.aecg:write_aecg",
    "ecgaware": "connectors.ecg.ecgaware:write_ecgaware",
    "dicom": "connectors.ecg.dicom_ecg:write_dicom",
}
# Output extension -> format (`.xml` means HL7 aECG unless --to ecgaware; `.ecgaware.xml` means ecgAware).
EXTENSIONS = {
    ".hea": "wfdb", ".dat": "wfdb", "": "wfdb", ".edf": "edf", ".csv": "csv", ".xml": "aecg", ".aecg": "aecg",
    ".ecgaware.xml": "ecgaware", ".ecgaware": "ecgaware", ".dcm": "dicom", ".dicom": "dicom",
}


def _load(target: str):
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


def read_ecg(path: str | Path, *, format: str | None = None, **options: Any) -> EcgRecord:
    """Read `path` (format detected by content unless given). Options go to the reader (e.g. csv `sample_rate=`)."""
    fmt = format or detect_format(path)
    if fmt not in READERS:
        raise EcgWriteError(fmt, f"no reader for {fmt!r} (readable: {', '.join(READERS)})")
    reader = _load(READERS[fmt])
    try:
        return reader(path, **options)
    except DAMAGED_FILE_ERRORS as exc:  # a damaged file must be a DecodeError naming it, never a crash
        raise EcgFormatError(path, f"not a readable {fmt} file ({type(exc).__name__}: {str(exc)[:200]})") from exc


def format_for_output(path: str | Path) -> str:
    name = Path(path).name.lower()
    for ext in sorted(EXTENSIONS, key=len, reverse=True):
        if ext and name.endswith(ext):
            return EXTENSIONS[ext]
    if "." not in name:
        return "wfdb"
    raise EcgWriteError("?", f"cannot tell the format from {Path(path).name!r}; use --to ({', '.join(WRITERS)})")


def write_ecg(record: EcgRecord, path: str | Path, format: str | None = None, **options: Any) -> Path:
    """Write `record` as `format` (or the format the output's extension names). Returns the main file written."""
    fmt = format or format_for_output(path)
    if fmt not in WRITERS:
        raise EcgWriteError(fmt, f"not a writable format (writable: {', '.join(WRITERS)}; SCP-ECG and Philips are read only)")
    if not record.leads:
        raise EcgWriteError(fmt, "record has no leads (annotation-only files cannot be converted)")
    return _load(WRITERS[fmt])(record, path, **options)


def convert_ecg(source: str | Path, target: str | Path, *, to: str | None = None,
                read_options: dict | None = None, write_options: dict | None = None) -> tuple[EcgRecord, Path]:
    record = read_ecg(source, **(read_options or {}))
    return record, write_ecg(record, target, to, **(write_options or {}))
