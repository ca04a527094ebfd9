"""Chunked access to a long recording: never the whole file in memory.

`open_recording(path, fmt, ...)` returns a `Recording` whose `read(start, stop)` gives samples
[start, stop) of every lead in millivolts (float32, shape (n, leads)).

- WFDB (`mit`): `wfdb.rdrecord(sampfrom=, sampto=)` per chunk.
- EDF/EDF+: `pyedflib.EdfReader.readSignal(chn, start, n)` per chunk.
- CSV: converted once, row block by row block (pandas `chunksize`), into a float32 `.npy`
  memory map in the job's work folder, then read like an array.
- Formats that only carry short resting ECGs (HL7 aECG, SCP-ECG, DICOM, Philips, ecgAware) are
  read whole with `connectors.ecg.read_ecg` and stored the same way (they are seconds long).

`check_recording` does the cheap header checks the API answers synchronously: truncated files
(fewer data bytes than the header promises) and the sampling rate against the submitted one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from connectors.ecg.model import UNIT_TO_UV, canonical_lead_name
from hub.ecg.analysis import PREFERRED_LEADS
from hub.holter.errors import HolterError

CSV_TIME_COLUMNS = {"timestamp": "iso", "datetime": "iso", "date_time": "iso", "time": "s", "time_s": "s",
                    "t": "s", "seconds": "s", "elapsed_s": "s", "time_ms": "ms", "ms": "ms"}
_UNIT = re.compile(r"^(.*?)\s*[\[(]([^\])]+)[\])]\s*$")
_WFDB_BYTES = {"8": 1.0, "16": 2.0, "61": 2.0, "80": 1.0, "160": 2.0, "212": 1.5, "310": 4 / 3, "311": 4 / 3, "24": 3.0, "32": 4.0}
CSV_BLOCK_ROWS = 500_000


@dataclass
class Recording:
    path: Path
    format: str
    sample_rate: float
    n_samples: int
    lead_names: list[str]
    start_time: datetime | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.sample_rate

    @property
    def detect_lead(self) -> int:
        """Index of the lead QRS detection runs on (hub.ecg.analysis.PREFERRED_LEADS order)."""
        names = [canonical_lead_name(n) for n in self.lead_names]
        return next((names.index(p) for p in PREFERRED_LEADS if p in names), 0)

    def read(self, start: int, stop: int) -> np.ndarray:  # pragma: no cover - overridden
        raise NotImplementedError

    def close(self) -> None:
        return None


@dataclass
class WfdbRecording(Recording):
    base: Path = Path()
    gains: list[float] = field(default_factory=list)
    baselines: list[float] = field(default_factory=list)
    factors: list[float] = field(default_factory=list)

    def read(self, start: int, stop: int) -> np.ndarray:
        import wfdb

        rec = wfdb.rdrecord(str(self.base), sampfrom=int(start), sampto=int(stop), physical=False, return_res=32)
        d = rec.d_signal.astype(np.float32)
        return ((d - np.float32(self.baselines)) / np.float32(self.gains) * np.float32(self.factors)).astype(np.float32)


@dataclass
class EdfRecording(Recording):
    channels: list[int] = field(default_factory=list)
    factors: list[float] = field(default_factory=list)
    _reader: object = None

    def read(self, start: int, stop: int) -> np.ndarray:
        import pyedflib

        if self._reader is None:
            self._reader = pyedflib.EdfReader(str(self.path))
        n = int(stop - start)
        cols = [self._reader.readSignal(ch, int(start), n) * f for ch, f in zip(self.channels, self.factors)]
        return np.column_stack(cols).astype(np.float32)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None


@dataclass
class ArrayRecording(Recording):
    array_path: Path = Path()
    _array: np.ndarray | None = None

    def read(self, start: int, stop: int) -> np.ndarray:
        if self._array is None:
            self._array = np.load(self.array_path, mmap_mode="r")
        return np.asarray(self._array[int(start):int(stop)], dtype=np.float32)

    def close(self) -> None:
        self._array = None


def open_recording(path: Path, fmt: str, work_dir: Path, *, sampling_rate: float | None = None,
                   gain: float | None = None, zero_voltage: float | None = None) -> Recording:
    """Open `path` (detected ECG format `fmt`) for chunked reading; may write a memory map into `work_dir`."""
    work_dir.mkdir(parents=True, exist_ok=True)
    if fmt == "wfdb":
        return open_wfdb(path)
    if fmt == "edf":
        return open_edf(path)
    if fmt == "csv":
        return convert_csv(path, work_dir / "signal.npy", sampling_rate=sampling_rate, gain=gain, zero_voltage=zero_voltage)
    return convert_whole(path, fmt, work_dir / "signal.npy")


def open_wfdb(path: Path) -> WfdbRecording:
    import wfdb

    base = path.with_suffix("") if path.suffix.lower() in (".hea", ".dat") else path
    try:
        h = wfdb.rdheader(str(base))
    except Exception as exc:  # wfdb raises bare ValueError/IndexError on bad headers
        raise HolterError("unsupported_format", f"{base.name}.hea: not a readable WFDB header: {exc}") from exc
    if isinstance(h.fs, (list, tuple)) or any((s or 1) != 1 for s in (h.samps_per_frame or [])):
        raise HolterError("unsupported_format", f"{base.name}.hea: multi-frequency WFDB records are not supported (one rate per record)")
    if not h.sig_len:
        raise HolterError("truncated_file", f"{base.name}.hea: header gives no sample count; cannot check the signal file is complete")
    _check_wfdb_sizes(base, h)
    units = [(u or "mV").lower() for u in h.units]
    return WfdbRecording(
        path=base.with_suffix(".hea"), format="wfdb", sample_rate=float(h.fs), n_samples=int(h.sig_len),
        lead_names=[canonical_lead_name(n) for n in h.sig_name],
        start_time=datetime.combine(h.base_date, h.base_time) if h.base_date and h.base_time else None,
        base=base, gains=[float(g or 200.0) for g in h.adc_gain], baselines=[float(b) for b in h.baseline],
        factors=[UNIT_TO_UV.get(u, 1000.0) / 1000.0 for u in units],
    )


def _check_wfdb_sizes(base: Path, h) -> None:
    per_file: dict[str, float] = {}
    for name, fmt in zip(h.file_name, h.fmt):
        if fmt not in _WFDB_BYTES:
            raise HolterError("unsupported_format", f"{base.name}.hea: WFDB signal format {fmt} is not supported "
                              f"(supported: {', '.join(_WFDB_BYTES)})")
        per_file[name] = per_file.get(name, 0.0) + _WFDB_BYTES[fmt]
    offsets = dict(zip(h.file_name, h.byte_offset or [None] * len(h.file_name)))
    for name, bytes_per_frame in per_file.items():
        dat = base.parent / name
        if not dat.exists():
            raise HolterError("truncated_file", f"{name}: signal file named by {base.name}.hea is missing from the upload")
        expected = int(np.floor(bytes_per_frame * h.sig_len)) + int(offsets.get(name) or 0)
        actual = dat.stat().st_size
        if actual < expected:
            raise HolterError("truncated_file", f"{name}: {actual} bytes, but the header promises {h.sig_len} samples "
                              f"({expected} bytes); the file is truncated")


def open_edf(path: Path) -> EdfRecording:
    import pyedflib

    _check_edf_size(path)
    try:
        reader = pyedflib.EdfReader(str(path))
    except OSError as exc:
        raise HolterError("unsupported_format", f"{path.name}: not a readable EDF/EDF+ file: {exc}") from exc
    try:
        channels = [i for i in range(reader.signals_in_file) if (reader.getPhysicalDimension(i) or "").lower() in UNIT_TO_UV]
        if not channels:
            raise HolterError("unsupported_format", f"{path.name}: no voltage (uV/mV) signals; labels: {reader.getSignalLabels()}")
        rates = {float(reader.getSampleFrequency(i)) for i in channels}
        if len(rates) > 1:
            raise HolterError("unsupported_format", f"{path.name}: ECG signals have different rates {sorted(rates)}; one rate is supported")
        n = min(int(reader.getNSamples()[i]) for i in channels)
        return EdfRecording(
            path=path, format="edf", sample_rate=rates.pop(), n_samples=n,
            lead_names=[canonical_lead_name(reader.getLabel(i)) for i in channels], start_time=reader.getStartdatetime(),
            channels=channels, factors=[UNIT_TO_UV[reader.getPhysicalDimension(i).lower()] / 1000.0 for i in channels],
        )
    finally:
        reader.close()


def _check_edf_size(path: Path) -> None:
    with open(path, "rb") as f:
        head = f.read(256)
        try:
            header_bytes, n_records, ns = int(head[184:192]), int(head[236:244]), int(head[252:256])
            f.seek(256 + ns * 216)
            per_record = sum(int(f.read(8)) for _ in range(ns)) * 2
        except ValueError as exc:
            raise HolterError("unsupported_format", f"{path.name}: EDF header fields are not numbers: {exc}") from exc
    expected = header_bytes + max(0, n_records) * per_record
    actual = path.stat().st_size
    if n_records > 0 and actual < expected:
        raise HolterError("truncated_file", f"{path.name}: {actual} bytes, but the header promises {n_records} data records "
                          f"({expected} bytes); the file is truncated")


def convert_csv(path: Path, out: Path, *, sampling_rate: float | None, gain: float | None, zero_voltage: float | None) -> ArrayRecording:
    """CSV -> float32 mV memory map, block by block. First column: time (ISO 8601 or seconds); then one column per lead."""
    import pandas as pd

    _check_csv_tail(path)
    columns = [str(c).strip() for c in pd.read_csv(path, nrows=0, skipinitialspace=True).columns]
    kind = CSV_TIME_COLUMNS.get(columns[0].lower()) if columns else None
    if kind is None and sampling_rate is None:
        raise HolterError("unsupported_format", f"{path.name}: first column {columns[0] if columns else ''!r} is not a time column "
                          f"(known: {', '.join(CSV_TIME_COLUMNS)}) and no sampling_rate was submitted")
    lead_cols = columns[1:] if kind else columns
    names, factors = [], []
    for col in lead_cols:
        m = _UNIT.match(col)
        name, unit = (m.group(1), m.group(2)) if m else (col, "mV")
        names.append(canonical_lead_name(name))
        factors.append(UNIT_TO_UV.get(unit.lower(), 1000.0) / 1000.0)
    if not names:
        raise HolterError("unsupported_format", f"{path.name}: no lead columns after the time column")
    rows = sum(len(b) for b in pd.read_csv(path, usecols=[0], chunksize=CSV_BLOCK_ROWS, skipinitialspace=True))
    if rows < 2:
        raise HolterError("truncated_file", f"{path.name}: fewer than two data rows")
    array = np.lib.format.open_memmap(out, mode="w+", dtype=np.float32, shape=(rows, len(names)))
    first = last = None
    row = 0
    for block in pd.read_csv(path, chunksize=CSV_BLOCK_ROWS, skipinitialspace=True, dtype={columns[0]: str} if kind == "iso" else None):
        leads = block.iloc[:, 1:] if kind else block
        values = leads.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
        if np.isnan(values).any():
            bad = row + int(np.argmax(np.isnan(values).any(axis=1))) + 2
            raise HolterError("unsupported_format", f"{path.name}: row {bad}: empty or non-numeric lead value")
        if gain:
            values = (values - (zero_voltage or 0.0)) / gain
        array[row:row + len(block)] = (values * np.array(factors)).astype(np.float32)
        if kind:
            times = _csv_times(path, block.iloc[:, 0], kind)
            first = times[0] if first is None else first
            last = times[-1]
        row += len(block)
    array.flush()
    del array
    start = None
    if kind:
        rate = (rows - 1) / (last - first) if last > first else 0.0
        if rate <= 0:
            raise HolterError("unsupported_format", f"{path.name}: the time column does not increase")
        rate = float(round(rate)) if abs(rate - round(rate)) < 1e-3 * rate else rate
        if kind == "iso":
            start = _iso_first(path)
    else:
        rate = float(sampling_rate)
    return ArrayRecording(path=path, format="csv", sample_rate=rate, n_samples=rows, lead_names=names, start_time=start, array_path=out,
                          notes=[f"CSV values scaled with submitted gain {gain} and zero {zero_voltage or 0}"] if gain else [])


def csv_preview_rate(path: Path, rows: int = 2000) -> float | None:
    """Sampling rate from the time column of the first rows (None when there is no time column); checks the tail too."""
    import pandas as pd

    _check_csv_tail(path)
    head = pd.read_csv(path, nrows=rows, skipinitialspace=True, dtype=str)
    if head.empty or len(head) < 2:
        raise HolterError("truncated_file", f"{path.name}: fewer than two data rows")
    kind = CSV_TIME_COLUMNS.get(str(head.columns[0]).strip().lower())
    if kind is None:
        return None
    times = _csv_times(path, head.iloc[:, 0], kind)
    span = float(times[-1] - times[0])
    if span <= 0:
        raise HolterError("unsupported_format", f"{path.name}: the time column does not increase")
    return (len(times) - 1) / span


def _csv_times(path: Path, column, kind: str) -> np.ndarray:
    import pandas as pd

    if kind == "iso":
        try:
            times = pd.to_datetime(column, format="ISO8601")
            if times.dt.tz is not None:
                times = times.dt.tz_convert("UTC").dt.tz_localize(None)
            return ((times - pd.Timestamp("1970-01-01")) / pd.Timedelta(seconds=1)).to_numpy(dtype=np.float64)
        except (ValueError, TypeError) as exc:
            raise HolterError("unsupported_format", f"{path.name}: timestamp column is not ISO 8601: {exc}") from exc
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
    if np.isnan(values).any():
        raise HolterError("unsupported_format", f"{path.name}: time column has non-numeric values")
    return values / 1000.0 if kind == "ms" else values


def _iso_first(path: Path) -> datetime | None:
    import pandas as pd

    first = pd.read_csv(path, nrows=1, dtype=str, skipinitialspace=True).iloc[0, 0]
    try:
        return pd.Timestamp(first).to_pydatetime().replace(tzinfo=None)
    except ValueError:
        return None


def _check_csv_tail(path: Path) -> None:
    """A CSV cut mid-row (last line with fewer fields than the header) is truncated."""
    with open(path, "rb") as f:
        header = f.readline().decode("utf-8", "replace")
        size = path.stat().st_size
        f.seek(max(0, size - 4096))
        tail = f.read().decode("utf-8", "replace")
    lines = [ln for ln in tail.splitlines() if ln.strip()]
    if not lines or not header.strip():
        raise HolterError("truncated_file", f"{path.name}: empty CSV")
    if lines[-1].count(",") != header.count(",") or lines[-1].rstrip().endswith(","):
        raise HolterError("truncated_file", f"{path.name}: last row has {lines[-1].count(',') + 1} fields, the header "
                          f"{header.count(',') + 1}; the file is truncated")


def convert_whole(path: Path, fmt: str, out: Path) -> ArrayRecording:
    from connectors.ecg import read_ecg
    from connectors.ecg.exceptions import EcgFormatError

    try:
        record = read_ecg(path, format=fmt)
    except EcgFormatError as exc:
        raise HolterError("unsupported_format", str(exc.reason)) from exc
    leads = [lead for lead in record.leads if lead.unit.lower() in UNIT_TO_UV]
    if not leads or record.n_samples < 2:
        raise HolterError("unsupported_format", f"{path.name}: no voltage leads with samples in this {fmt} file")
    array = np.column_stack([lead.microvolts() / 1000.0 for lead in leads]).astype(np.float32)
    np.save(out, array)
    return ArrayRecording(path=path, format=fmt, sample_rate=record.sample_rate, n_samples=record.n_samples,
                          lead_names=[lead.name for lead in leads], start_time=record.start_time, array_path=out)
