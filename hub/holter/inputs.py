"""From an uploaded file to an ECG file the readers take: unpack `mit` archives, check the declared
format against the content, and the cheap checks the API answers at submit time.

API `file_format` -> reader format: mit -> wfdb (a zip or tar of .hea + .dat [+ .atr]), edf, csv,
aecg, scp, dicom, philips, ecgaware. Archives are unpacked with path checks (no absolute paths,
no `..`, no links) and a size cap.
"""

from __future__ import annotations

import shutil
import tarfile
import zipfile
from pathlib import Path

from connectors.ecg.detect import detect_format
from connectors.ecg.exceptions import EcgFormatError
from hub.holter.errors import HolterError
from hub.holter.formats import FILE_FORMATS, check_file_format
from hub.holter.settings import HolterSettings
from hub.holter.stream import Recording, csv_preview_rate, open_recording

UNPACK_FACTOR = 8  # an archive may unpack to at most this many times the upload limit
COPY_BLOCK = 1 << 20  # archives are unpacked 1 MB at a time, never read whole


def prepare_input(upload: Path, file_format: str, work: Path, s: HolterSettings) -> Path:
    """The path to give the reader: the upload itself, or the .hea of an unpacked mit archive."""
    wanted = check_file_format(file_format)
    path = unpack_mit(upload, work / "input", s.max_upload_bytes * UNPACK_FACTOR) if file_format == "mit" else upload
    try:
        found = detect_format(path)
    except EcgFormatError as exc:
        raise HolterError("unsupported_format", f"{upload.name}: {exc.reason}") from exc
    if found != wanted:
        raise HolterError("unsupported_format", f"{upload.name}: declared file_format {file_format!r} but the content is {found!r}")
    return path


def unpack_mit(upload: Path, dest: Path, max_bytes: int) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(upload):
        with zipfile.ZipFile(upload) as z:
            members = [(m.filename, m.file_size) for m in z.infolist() if not m.is_dir()]
            _check_members(upload, members, max_bytes)
            for name, _ in members:
                with z.open(name) as src, open(dest / Path(name).name, "wb") as out:
                    shutil.copyfileobj(src, out, COPY_BLOCK)
    elif _is_tar(upload):
        with tarfile.open(upload) as t:
            files = [m for m in t.getmembers() if m.isfile()]
            if any(m.issym() or m.islnk() for m in t.getmembers()):
                raise HolterError("unsupported_format", f"{upload.name}: links are not allowed in a mit archive")
            _check_members(upload, [(m.name, m.size) for m in files], max_bytes)
            for m in files:
                with t.extractfile(m) as src, open(dest / Path(m.name).name, "wb") as out:
                    shutil.copyfileobj(src, out, COPY_BLOCK)
    else:
        raise HolterError("unsupported_format", f"{upload.name}: a mit upload must be a zip or tar(.gz) of the record's .hea and .dat files")
    headers = sorted(dest.glob("*.hea"))
    if not headers:
        raise HolterError("unsupported_format", f"{upload.name}: no .hea header in the archive (files: {', '.join(p.name for p in dest.iterdir())})")
    if len(headers) > 1:
        raise HolterError("unsupported_format", f"{upload.name}: more than one record in the archive ({', '.join(p.name for p in headers)}); send one")
    return headers[0]


def _is_tar(path: Path) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False


def _check_members(upload: Path, members: list[tuple[str, int]], max_bytes: int) -> None:
    total = 0
    for name, size in members:
        p = Path(name)
        if p.is_absolute() or ".." in p.parts:
            raise HolterError("unsupported_format", f"{upload.name}: unsafe path {name!r} in archive")
        total += size
    if total > max_bytes:
        raise HolterError("file_too_large", f"{upload.name}: archive unpacks to {total} bytes (limit {max_bytes})")


def check_recording(rec: Recording, *, sampling_rate: float | None, s: HolterSettings) -> None:
    """Submitted sampling rate against the file's, and the duration limit."""
    if sampling_rate and abs(rec.sample_rate - sampling_rate) > s.sampling_rate_tolerance * rec.sample_rate:
        raise HolterError("sampling_rate_mismatch", f"submitted sampling_rate {sampling_rate:g} Hz, but the file says "
                              f"{rec.sample_rate:g} Hz (tolerance {100 * s.sampling_rate_tolerance:g} %)")
    hours = rec.duration_s / 3600.0
    if hours > s.max_duration_hours:
        raise HolterError("duration_too_long", f"recording is {hours:.1f} h; the limit is {s.max_duration_hours:g} h")


def preflight(upload: Path, file_format: str, work: Path, s: HolterSettings, *, sampling_rate: float | None) -> None:
    """Submit-time checks without reading the signal: format, truncation, sampling rate, duration.
    CSV is checked on its first rows and its last line (the full conversion happens in the worker)."""
    path = prepare_input(upload, file_format, work, s)
    if file_format == "csv":
        rate = csv_preview_rate(path)
        if rate is not None and sampling_rate and abs(rate - sampling_rate) > s.sampling_rate_tolerance * rate:
            raise HolterError("sampling_rate_mismatch", f"submitted sampling_rate {sampling_rate:g} Hz, but the CSV time column "
                              f"gives {rate:g} Hz (tolerance {100 * s.sampling_rate_tolerance:g} %)")
        return
    rec = open_recording(path, FILE_FORMATS[file_format], work, sampling_rate=sampling_rate)
    try:
        check_recording(rec, sampling_rate=sampling_rate, s=s)
    finally:
        rec.close()


def open_checked(upload: Path, file_format: str, work: Path, s: HolterSettings, *, sampling_rate: float | None,
                 gain: float | None = None, zero_voltage: float | None = None) -> Recording:
    path = prepare_input(upload, file_format, work, s)
    rec = open_recording(path, FILE_FORMATS[file_format], work, sampling_rate=sampling_rate, gain=gain, zero_voltage=zero_voltage)
    check_recording(rec, sampling_rate=sampling_rate, s=s)
    return rec
