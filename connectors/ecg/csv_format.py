"""CSV: one time column plus one column per lead.

Written as `timestamp,I [mV],II [mV],...` with ISO-8601 sample times when the start time is
known (`time_s` seconds from start otherwise); values in each lead's unit with as many
decimals as its resolution needs. Read: the time column (`timestamp`, `time`, `time_s`,
`time_ms`, ...) gives rate and start; files without one (such as exports that hold only lead
columns) need `sample_rate=`. Header units in brackets are honoured; plain lead names mean
`unit=` (mV by default). Values are quantised at the finest decimal step the file uses, so
nothing is lost. Patient, device and annotations have no place in a CSV.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from connectors.ecg.exceptions import EcgFormatError, EcgWriteError
from connectors.ecg.model import EcgRecord, Lead, canonical_lead_name

TIME_COLUMNS = {"timestamp": None, "datetime": None, "date_time": None, "time": "s", "time_s": "s", "t": "s",
                "seconds": "s", "elapsed_s": "s", "time_ms": "ms", "ms": "ms"}
_UNIT_IN_HEADER = re.compile(r"^(.*?)\s*[\[(]([^\])]+)[\])]\s*$")
MAX_DECIMALS = 9


def read_csv(path: str | Path, *, sample_rate: float | None = None, unit: str = "mV") -> EcgRecord:
    try:
        columns = [str(c) for c in pd.read_csv(path, nrows=0, skipinitialspace=True, comment="#").columns]
        time_kind = TIME_COLUMNS.get(columns[0].strip().lower(), "absent") if columns else "absent"
        frame = pd.read_csv(path, skipinitialspace=True, comment="#", float_precision="round_trip",
                            dtype={columns[0]: str} if time_kind is None else None)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError, IndexError) as exc:
        raise EcgFormatError(path, f"not a readable CSV file: {exc}") from exc
    if frame.empty:
        raise EcgFormatError(path, "CSV has no rows")
    start = None
    if time_kind != "absent":
        rate, start = _rate_from_time(path, frame[columns[0]], time_kind)
        columns = columns[1:]
    elif sample_rate is None:
        raise EcgFormatError(path, f"no time column (first column {columns[0]!r}; known: {', '.join(TIME_COLUMNS)}) "
                             "and no sample rate given (pass sample_rate= / --rate)")
    if sample_rate is not None:
        rate = float(sample_rate)
    leads = tuple(_read_lead(path, name, frame[name], unit) for name in columns)
    return EcgRecord(leads=leads, sample_rate=rate, start_time=start, source_format="csv")


def _rate_from_time(path, column: pd.Series, kind: str | None) -> tuple[float, datetime | None]:
    if len(column) < 2:
        raise EcgFormatError(path, "need at least two rows to derive the sample rate from the time column")
    if kind is None:
        try:
            times = pd.to_datetime(column, format="ISO8601")
        except (ValueError, TypeError) as exc:
            raise EcgFormatError(path, f"timestamp column is not ISO-8601: {exc}", field=column.name) from exc
        span = (times.iloc[-1] - times.iloc[0]).total_seconds()
        step = span / (len(times) - 1)
        start = times.iloc[0].to_pydatetime()
    else:
        values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
        if np.isnan(values).any():
            raise EcgFormatError(path, "time column has non-numeric values", field=column.name)
        step = float(values[-1] - values[0]) / (len(values) - 1) / (1000.0 if kind == "ms" else 1.0)
        start = None
    if step <= 0:
        raise EcgFormatError(path, "time column does not increase", field=column.name)
    rate = 1.0 / step
    return (round(rate) if abs(rate - round(rate)) < 1e-3 else round(rate, 6)), start


def _read_lead(path, header: str, column: pd.Series, default_unit: str) -> Lead:
    m = _UNIT_IN_HEADER.match(header)
    name, unit = (m.group(1), m.group(2)) if m else (header, default_unit)
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
    if np.isnan(values).any():
        row = int(np.argmax(np.isnan(values))) + 2
        raise EcgFormatError(path, f"empty or non-numeric value {column.iloc[row - 2]!r} in row {row}", field=header)
    decimals = _decimals_used(values)
    digital = np.rint(values * 10.0**decimals).astype(np.int64)
    if np.abs(digital).max(initial=0) <= 2**31 - 1:
        digital = digital.astype(np.int32)
    return Lead(canonical_lead_name(name), digital, 10.0**-decimals, 0.0, unit)


def _decimals_used(values: np.ndarray) -> int:
    """Fewest decimals that hold every value exactly (the file's own resolution), at most MAX_DECIMALS."""
    for decimals in range(MAX_DECIMALS):
        scaled = values * 10.0**decimals
        if np.all(np.abs(scaled - np.rint(scaled)) <= 1e-6 * np.maximum(1.0, np.abs(scaled) * 1e-9)):
            return decimals
    return MAX_DECIMALS


def write_csv(record: EcgRecord, path: str | Path) -> Path:
    if not record.leads:
        raise EcgWriteError("csv", "record has no leads")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    data: dict[str, object] = {}
    offsets = np.arange(record.n_samples) / record.sample_rate
    if record.start_time is not None:
        times = pd.Timestamp(record.start_time) + pd.to_timedelta(np.rint(offsets * 1e6).astype(np.int64), unit="us")
        data["timestamp"] = times.strftime("%Y-%m-%dT%H:%M:%S.%f")
    else:
        data["time_s"] = np.char.mod("%.9f", offsets)
    for lead in record.leads:
        decimals = _decimals_for(lead.scale, lead.baseline)
        data[f"{lead.name} [{lead.unit}]"] = np.char.mod(f"%.{decimals}f", lead.physical())
    pd.DataFrame(data).to_csv(out, index=False)
    return out


def _decimals_for(scale: float, baseline: float) -> int:
    """Fewest decimals that print every value of this lead exactly, or to 1/1000 of a count."""
    enough = min(MAX_DECIMALS, max(0, math.ceil(-math.log10(scale)) + 3))
    for decimals in range(enough):
        step = scale * 10**decimals
        offset = baseline * step
        if math.isclose(step, round(step), abs_tol=1e-9) and math.isclose(offset, round(offset), abs_tol=1e-9):
            return decimals
    return enough
