"""EDF / EDF+ via pyedflib.

Carries: leads (label, unit), one rate, start date/time (seconds), 16-bit counts with
physical/digital min/max (-> scale and baseline), EDF+ annotations (onset, duration, text),
patient code/name/sex/birth date and equipment. EDF stores whole data records: the writer
pads the last record and notes the true length in the EDF+ recording-additional field
(`n_samples=N`), which the reader honours. Annotations are time-based (lead is lost);
samples wider than 16 bits are requantised to fit (BDF is not written).
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pyedflib

from connectors.ecg.exceptions import EcgFormatError, EcgWriteError
from connectors.ecg.model import (
    INT16_SAFE,
    UNIT_TO_UV,
    Annotation,
    Device,
    EcgRecord,
    Lead,
    Patient,
    canonical_lead_name,
    fit_int16,
)

ANNOTATION_ONLY_RATE = 1000.0  # annotations of a signal-less EDF+ are kept at 1 ms resolution
_LENGTH_NOTE = re.compile(r"n_samples=(\d+)")


def read_edf(path: str | Path) -> EcgRecord:
    try:
        reader = pyedflib.EdfReader(str(path))
    except OSError as exc:
        raise EcgFormatError(path, f"not a readable EDF/EDF+ file: {exc}") from exc
    try:
        return _read_open(reader, path)
    finally:
        reader.close()


def _read_open(reader: pyedflib.EdfReader, path: str | Path) -> EcgRecord:
    n = reader.signals_in_file
    rates = [float(reader.getSampleFrequency(i)) for i in range(n)]
    if len(set(rates)) > 1:
        raise EcgFormatError(path, f"signals have different rates {dict(Counter(rates))}; one rate per record is supported")
    rate = rates[0] if rates else ANNOTATION_ONLY_RATE
    note = reader.getRecordingAdditional() or ""
    keep = _LENGTH_NOTE.search(note)
    leads = []
    for i in range(n):
        digital = reader.readSignal(i, digital=True).astype(np.int32)
        if keep:
            digital = digital[: int(keep.group(1))]
        dmin, dmax = reader.getDigitalMinimum(i), reader.getDigitalMaximum(i)
        pmin, pmax = reader.getPhysicalMinimum(i), reader.getPhysicalMaximum(i)
        scale = (pmax - pmin) / (dmax - dmin)
        baseline = dmin - pmin / scale
        leads.append(Lead(canonical_lead_name(reader.getLabel(i)), digital, scale, float(baseline), reader.getPhysicalDimension(i) or "uV"))
    onsets, durations, texts = reader.readAnnotations()
    annotations = tuple(
        _annotation_from_text(str(text), float(onset), float(duration), rate)
        for onset, duration, text in zip(onsets, durations, texts)
    )
    return EcgRecord(
        leads=tuple(leads),
        sample_rate=rate,
        start_time=None if "start=unknown" in note else reader.getStartdatetime(),
        patient=_read_patient(reader),
        device=Device(model=_field(reader.getEquipment())),
        annotations=annotations,
        source_format="edf",
    )


def _annotation_from_text(text: str, onset: float, duration: float, rate: float) -> Annotation:
    code, _, rest = text.strip().partition(" ")
    sample = int(round(onset * rate))
    end = int(round((onset + duration) * rate)) if duration > 0 else None
    return Annotation(sample=sample, code=code or text, text=rest, end_sample=end)


def _field(text: str | None) -> str:
    """EDF+ writes `X` for an unknown subfield and `_` for spaces."""
    value = (text or "").strip().replace("_", " ")
    return "" if value == "X" else value


def _read_patient(reader: pyedflib.EdfReader) -> Patient:
    sex = (reader.getSex() or "").strip()[:1].upper()
    birth = None
    try:
        birth = reader.getBirthdate(string=False) or None
        if isinstance(birth, datetime):
            birth = birth.date()
    except (ValueError, TypeError):
        birth = None
    return Patient(
        id=_field(reader.getPatientCode()),
        name=_field(reader.getPatientName()),
        sex=sex if sex in ("M", "F") else "",
        birth_date=birth if isinstance(birth, date) else None,
    )


def write_edf(record: EcgRecord, path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not record.leads:
        raise EcgWriteError("edf", "record has no leads")
    if abs(record.sample_rate - round(record.sample_rate)) > 1e-9:
        raise EcgWriteError("edf", f"sample rate {record.sample_rate} Hz is not a whole number of samples per 1 s record")
    labels = [lead.name[:16] for lead in record.leads]
    if len(set(labels)) != len(labels):
        raise EcgWriteError("edf", f"EDF labels must be unique within 16 characters: {labels}")
    leads = [fit_int16(lead) for lead in record.leads]
    writer = pyedflib.EdfWriter(str(out), len(leads), file_type=pyedflib.FILETYPE_EDFPLUS)
    try:
        writer.setSignalHeaders([_signal_header(label, lead, record.sample_rate) for label, lead in zip(labels, leads)])
        _write_header_fields(writer, record)
        records = max(1, -(-record.n_samples // int(round(record.sample_rate))))
        writer.set_number_of_annotation_signals(min(64, max(1, -(-len(record.annotations) // records) + 1)))
        for a in record.annotations:
            onset = a.sample / record.sample_rate
            duration = -1 if a.end_sample is None else (a.end_sample - a.sample) / record.sample_rate
            writer.writeAnnotation(onset, duration, f"{a.code} {a.text}".strip())
        writer.writeSamples([np.ascontiguousarray(lead.digital, dtype=np.int32) for lead in leads], digital=True)
    finally:
        writer.close()
    return out


def _signal_header(label: str, lead: Lead, rate: float) -> dict:
    """Header of one signal. Voltage leads are written in uV or mV, whichever the 8-character
    physical min/max fields hold more exactly."""
    inside = lead.digital.size == 0 or (lead.digital.min() >= -INT16_SAFE and lead.digital.max() <= INT16_SAFE)
    dmin, dmax = (-INT16_SAFE, INT16_SAFE) if inside else (-32768, 32767)
    options = [(lead.unit, 1.0)]
    factor = UNIT_TO_UV.get(lead.unit.lower())
    if factor is not None:
        options = [("uV", factor), ("mV", factor / 1000.0)]

    def error(option: tuple[str, float]) -> float:
        _, k = option
        lo, hi = (dmin - lead.baseline) * lead.scale * k, (dmax - lead.baseline) * lead.scale * k
        return (abs(_edf_number(lo) - lo) + abs(_edf_number(hi) - hi)) / max(abs(hi - lo), 1e-300)

    unit, k = min(options, key=error)
    return {
        "label": label,
        "dimension": unit[:8],
        "sample_frequency": int(round(rate)),
        "physical_min": _edf_number((dmin - lead.baseline) * lead.scale * k),
        "physical_max": _edf_number((dmax - lead.baseline) * lead.scale * k),
        "digital_min": dmin,
        "digital_max": dmax,
        "transducer": "",
        "prefilter": "",
    }


def _edf_number(value: float) -> float:
    """EDF header numbers are 8 ASCII characters: keep as many significant digits as fit."""
    for digits in range(8, 0, -1):
        text = f"{value:.{digits}g}"
        if len(text) <= 8 and "e" not in text:
            return float(text)
    raise EcgWriteError("edf", f"physical range value {value} does not fit 8 characters")


def _edf_field(text: str) -> str:
    """EDF+ subfields are ASCII without spaces (spaces become `_`, read back as spaces)."""
    return text.encode("ascii", "replace").decode("ascii").replace(" ", "_")


def _write_header_fields(writer: pyedflib.EdfWriter, record: EcgRecord) -> None:
    p = record.patient
    if record.start_time:
        writer.setStartdatetime(record.start_time.replace(tzinfo=None))
    if p.id:
        writer.setPatientCode(_edf_field(p.id))
    if p.name:
        writer.setPatientName(_edf_field(p.name))
    if p.sex in ("M", "F"):
        writer.setSex(1 if p.sex == "M" else 0)
    if p.birth_date:
        writer.setBirthdate(p.birth_date)
    device = " ".join(x for x in (record.device.manufacturer, record.device.model) if x)
    if device:
        writer.setEquipment(_edf_field(device)[:40])
    note = f"n_samples={record.n_samples}" + ("" if record.start_time else " start=unknown")
    writer.setRecordingAdditional(note)
