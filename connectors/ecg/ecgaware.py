"""ecgAware-style ECG XML (schema: connectors/ecg/schema/ecgaware.xsd, docs: docs/ecg-formats.md).

Carries everything the canonical record holds (study, patient, record, device, session with
location/site/protocol/alarm, up to 12 channels, annotations, measurements, interpretation),
with waveforms as `intValue`, `binaryData` (base64) or `fileLink` (a sidecar binary file).
Documents are validated against the schema on read and in the tests.
"""

from __future__ import annotations

import base64
from datetime import date, datetime
from pathlib import Path

import numpy as np
from lxml import etree

from connectors.ecg.exceptions import EcgFormatError, EcgWriteError
from connectors.ecg.model import Annotation, Device, EcgRecord, Lead, Measurement, Patient, Session

NS = "urn:devsync:ecgaware:1"
SCHEMA_PATH = Path(__file__).parent / "schema" / "ecgaware.xsd"
MAX_CHANNELS = 12
ENCODINGS = ("IntValue", "BinaryData", "FileLink")
_Q = f"{{{NS}}}"
_DTYPES = {"int16le": "<i2", "int32le": "<i4"}
_schema: etree.XMLSchema | None = None


def load_schema() -> etree.XMLSchema:
    global _schema
    if _schema is None:
        _schema = etree.XMLSchema(etree.parse(str(SCHEMA_PATH)))
    return _schema


# ---------------------------------------------------------------- reading
def read_ecgaware(path: str | Path) -> EcgRecord:
    try:
        doc = etree.parse(str(path), etree.XMLParser(huge_tree=True, resolve_entities=False))
    except etree.XMLSyntaxError as exc:
        raise EcgFormatError(path, f"not well-formed XML: {exc}") from exc
    schema = load_schema()
    if not schema.validate(doc):
        err = schema.error_log.last_error
        raise EcgFormatError(path, f"line {err.line}: {err.message} (schema {SCHEMA_PATH.name})")
    root = doc.getroot()
    study, person, rec = root.find(_Q + "study"), root.find(_Q + "patientData"), root.find(_Q + "record")
    session_el = rec.find(_Q + "recordingSession")
    leads = tuple(_read_channel(Path(path), ch) for ch in rec.find(_Q + "channels"))
    return EcgRecord(
        leads=leads,
        sample_rate=float(rec.get("sampleRate")),
        start_time=_dt(rec.get("start")),
        patient=Patient(
            id=person.get("id", ""),
            name=person.get("name", ""),
            sex=person.get("sex", ""),
            birth_date=date.fromisoformat(person.get("birthDate")) if person.get("birthDate") else None,
            age_years=float(person.get("ageYears")) if person.get("ageYears") else None,
        ),
        device=Device(**{k: rec.find(_Q + "recordingDevice").get(k, "") for k in ("manufacturer", "model", "serial", "software")}),
        annotations=tuple(
            Annotation(int(a.get("sample")), a.get("code"), a.text or "",
                       int(a.get("endSample")) if a.get("endSample") else None, a.get("lead"))
            for a in rec.iterfind(f"{_Q}annotations/{_Q}annotation")
        ),
        measurements=tuple(
            Measurement(m.get("name"), float(m.get("value")), m.get("unit", ""), m.get("lead"))
            for m in rec.iterfind(f"{_Q}measurements/{_Q}measurement")
        ),
        interpretation=tuple(s.text or "" for s in rec.iterfind(f"{_Q}interpretation/{_Q}statement")),
        session=Session(
            location=_text(session_el, "location"),
            site=_text(session_el, "site"),
            clinical_protocol=_text(session_el, "clinicalProtocol"),
            alarm=_text(session_el, "alarm"),
            alarm_time=_dt(session_el.find(_Q + "alarm").get("time")) if session_el.find(_Q + "alarm") is not None else None,
            study_id=study.get("id", ""),
            record_id=rec.get("id", ""),
            partial=rec.get("partial", "false") in ("true", "1"),
            segment=int(rec.get("segment")) if rec.get("segment") else None,
        ),
        source_format="ecgaware",
    )


def _text(parent, tag: str) -> str:
    el = parent.find(_Q + tag)
    return (el.text or "") if el is not None else ""


def _dt(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _read_channel(path: Path, ch) -> Lead:
    data = ch[0]
    tag = etree.QName(data).localname
    if tag == "intValue":
        counts = np.array((data.text or "").split(), dtype=np.int64)
    elif tag == "binaryData":
        counts = np.frombuffer(base64.b64decode(data.text or ""), dtype=_DTYPES[data.get("sampleType")])
    else:
        target = (path.parent / data.get("href")).resolve()
        if not target.exists():
            raise EcgFormatError(path, f"channel {ch.get('index')}: linked file {data.get('href')} not found", field="fileLink")
        dtype = np.dtype(_DTYPES[data.get("sampleType")])
        raw = target.read_bytes()
        offset = int(data.get("offset", "0"))
        samples = int(ch.getparent().getparent().get("samples"))
        counts = np.frombuffer(raw, dtype=dtype, count=samples, offset=offset)
    return Lead(ch.get("lead"), counts.astype(np.int32), float(ch.get("scale")), float(ch.get("baseline", "0")), ch.get("unit"))


# ---------------------------------------------------------------- writing
def build_ecgaware(record: EcgRecord, *, encoding: str = "IntValue", link_name: str | None = None) -> tuple[etree._ElementTree, bytes]:
    """Pure: the document and, for FileLink, the bytes of the linked file (named `link_name`)."""
    if encoding not in ENCODINGS:
        raise EcgWriteError("ecgaware", f"unknown waveform encoding {encoding!r} (use {', '.join(ENCODINGS)})")
    if not 1 <= len(record.leads) <= MAX_CHANNELS:
        raise EcgWriteError("ecgaware", f"{len(record.leads)} leads; the schema allows 1 to {MAX_CHANNELS} channels")
    s, p, d = record.session, record.patient, record.device
    root = etree.Element(_Q + "ecgAware", nsmap={None: NS}, version="1.0")
    _el(root, "study", id=s.study_id)
    _el(root, "patientData", id=p.id, name=p.name or None, sex=p.sex or None,
        birthDate=p.birth_date.isoformat() if p.birth_date else None,
        ageYears=f"{p.age_years:g}" if p.age_years is not None else None)
    rec = _el(root, "record", id=s.record_id, start=record.start_time.isoformat() if record.start_time else None,
              sampleRate=_decimal(record.sample_rate), samples=str(record.n_samples),
              partial="true" if s.partial else None, segment=str(s.segment) if s.segment is not None else None)
    _el(rec, "recordingDevice", manufacturer=d.manufacturer or None, model=d.model or None, serial=d.serial or None,
        software=d.software or None)
    session = _el(rec, "recordingSession", timestamp=record.start_time.isoformat() if record.start_time else None)
    for tag, value in (("location", s.location), ("site", s.site), ("clinicalProtocol", s.clinical_protocol)):
        if value:
            _el(session, tag).text = value
    if s.alarm:
        _el(session, "alarm", time=s.alarm_time.isoformat() if s.alarm_time else None).text = s.alarm
    channels = _el(rec, "channels")
    blob = bytearray()
    for index, lead in enumerate(record.leads, start=1):
        ch = _el(channels, "channel", index=str(index), lead=lead.name, scale=_decimal(lead.scale),
                 baseline=_decimal(lead.baseline) if lead.baseline else None, unit=lead.unit)
        blob += _write_waveform(ch, lead, encoding, link_name, len(blob))
    _write_extras(rec, record)
    return etree.ElementTree(root), bytes(blob)


def _write_waveform(ch, lead: Lead, encoding: str, link_name: str | None, offset: int) -> bytes:
    if encoding == "IntValue":
        _el(ch, "intValue").text = " ".join(map(str, lead.digital.tolist()))
        return b""
    wide = lead.digital.size and (lead.digital.min() < -32768 or lead.digital.max() > 32767)
    kind = "int32le" if wide else "int16le"
    raw = np.ascontiguousarray(lead.digital, dtype=_DTYPES[kind]).tobytes()
    if encoding == "BinaryData":
        _el(ch, "binaryData", sampleType=kind).text = base64.b64encode(raw).decode("ascii")
        return b""
    _el(ch, "fileLink", href=link_name or "samples.bin", sampleType=kind, offset=str(offset))
    return raw


def _write_extras(rec, record: EcgRecord) -> None:
    if record.annotations:
        anns = _el(rec, "annotations")
        for a in record.annotations:
            _el(anns, "annotation", sample=str(a.sample), endSample=str(a.end_sample) if a.end_sample is not None else None,
                code=a.code, lead=a.lead).text = a.text or None
    if record.measurements:
        ms = _el(rec, "measurements")
        for m in record.measurements:
            _el(ms, "measurement", name=m.name, value=repr(float(m.value)), unit=m.unit or None, lead=m.lead)
    if record.interpretation:
        interp = _el(rec, "interpretation")
        for text in record.interpretation:
            _el(interp, "statement").text = text


def _decimal(value: float) -> str:
    """xs:decimal text (no exponent), shortest that reads back as the same float."""
    return np.format_float_positional(float(value), trim="-")


def _el(parent, tag: str, **attrs: str | None):
    return etree.SubElement(parent, _Q + tag, {k: v for k, v in attrs.items() if v is not None})


def write_ecgaware(record: EcgRecord, path: str | Path, *, encoding: str = "IntValue") -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    link_name = out.name.rsplit(".", 1)[0] + ".samples.bin"
    doc, blob = build_ecgaware(record, encoding=encoding, link_name=link_name)
    if encoding == "FileLink":
        (out.parent / link_name).write_bytes(blob)
    doc.write(str(out), xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return out
