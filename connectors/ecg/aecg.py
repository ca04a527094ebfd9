"""HL7 v3 annotated ECG (aECG, FDA format) reader and writer, with lxml.

Read: the RHYTHM series (not the representative-beat derived series): the TIME_ABSOLUTE
(GLIST_TS) or TIME_RELATIVE (GLIST_PQ) sequence gives start and rate; each lead is an
SLIST_PQ (origin + scale x digits). Subject id/name/sex/birth time and reported age,
the series device, and the series annotation sets: coded annotations with a time ROI
(and optional lead boundary) -> annotations; PQ values -> measurements; ST values ->
interpretation statements.
Write: a document that validates against the HL7 2003-12 aECG schema (PORT_MT020001.xsd).
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from lxml import etree

from connectors.ecg.exceptions import EcgFormatError
from connectors.ecg.model import Annotation, Device, EcgRecord, Lead, Measurement, Patient, canonical_lead_name

NS = "urn:hl7-org:v3"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
MDC = "2.16.840.1.113883.6.24"
ACT_CODE = "2.16.840.1.113883.5.4"
LOCAL_CODES = "1.3.6.1.4.1.19376.1.6.99"  # placeholder OID for codes that are not MDC terms (WFDB symbols, lead names)
_Q = f"{{{NS}}}"
_TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "min": 60.0}
_ANNOTATION_PARENTS = (("MDC_ECG_WAVC_", "MDC_ECG_WAVC"), ("MDC_ECG_RHY_", "MDC_ECG_RHY"), ("MDC_ECG_BEAT_", "MDC_ECG_BEAT"))
INTERPRETATION_CODE = "MDC_ECG_INTERPRETATION_STATEMENT"


def _x(node, path: str):
    return node.find(path.replace("h:", _Q))


def _xs(node, path: str):
    return node.findall(path.replace("h:", _Q))


def parse_ts(text: str) -> datetime:
    """HL7 TS `YYYYMMDDHHMMSS.ffff[+ZZZZ]` -> naive datetime (the zone, if any, is dropped: device time)."""
    m = re.match(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\.\d+)?", text.strip())
    if not m:
        raise ValueError(f"not an HL7 TS: {text!r}")
    parts = [int(g) if g else d for g, d in zip(m.groups()[:6], (0, 1, 1, 0, 0, 0))]
    micro = int(round(float(m.group(7)) * 1e6)) if m.group(7) else 0
    return datetime(*parts) + timedelta(microseconds=micro)


def format_ts(moment: datetime) -> str:
    text = moment.strftime("%Y%m%d%H%M%S.%f")
    return text.removesuffix("000")


# ---------------------------------------------------------------- reading
def read_aecg(path: str | Path) -> EcgRecord:
    try:
        root = etree.parse(str(path), etree.XMLParser(huge_tree=True, resolve_entities=False)).getroot()
    except etree.XMLSyntaxError as exc:
        raise EcgFormatError(path, f"not well-formed XML: {exc}") from exc
    if root.tag != _Q + "AnnotatedECG":
        raise EcgFormatError(path, f"root element is {root.tag}, expected {{{NS}}}AnnotatedECG")
    series = [s for s in _xs(root, "h:component/h:series")]
    if not series:
        raise EcgFormatError(path, "no component/series (no waveforms)")
    rhythm = next((s for s in series if (_x(s, "h:code") is not None and _x(s, "h:code").get("code") == "RHYTHM")), series[0])
    seq_set = _x(rhythm, "h:component/h:sequenceSet")
    if seq_set is None:
        raise EcgFormatError(path, "RHYTHM series has no sequenceSet")
    start, rate, leads = _read_sequences(path, seq_set)
    if start is None:
        center = _x(root, "h:effectiveTime/h:center")
        start = parse_ts(center.get("value")) if center is not None and center.get("value") else None
    annotations, measurements, statements = _read_annotation_sets(rhythm, start, rate)
    return EcgRecord(
        leads=leads,
        sample_rate=rate,
        start_time=start,
        patient=_read_patient(root),
        device=_read_device(rhythm),
        annotations=annotations,
        measurements=measurements,
        interpretation=statements,
        source_format="aecg",
    )


def _read_sequences(path, seq_set) -> tuple[datetime | None, float, tuple[Lead, ...]]:
    start, rate, leads = None, None, []
    for seq in _xs(seq_set, "h:component/h:sequence"):
        code = _x(seq, "h:code").get("code", "")
        value = _x(seq, "h:value")
        if code in ("TIME_ABSOLUTE", "TIME_RELATIVE"):
            inc = _x(value, "h:increment")
            step = float(inc.get("value")) * _TIME_UNITS.get(inc.get("unit", "s"), 1.0)
            rate = 1.0 / step
            head = _x(value, "h:head")
            if code == "TIME_ABSOLUTE" and head is not None:
                start = parse_ts(head.get("value"))
            continue
        digits = _x(value, "h:digits")
        if digits is None:
            raise EcgFormatError(path, f"sequence {code} has no digits (only SLIST_PQ waveforms are read)")
        origin, scale = _x(value, "h:origin"), _x(value, "h:scale")
        scale_v = float(scale.get("value"))
        origin_v = float(origin.get("value")) if origin is not None else 0.0
        counts = np.array((digits.text or "").split(), dtype=np.int64)
        name = canonical_lead_name(code) if code.startswith("MDC_ECG_LEAD_") else code
        leads.append(Lead(name, counts.astype(np.int32), scale_v, -origin_v / scale_v, scale.get("unit", "uV")))
    if rate is None:
        raise EcgFormatError(path, "no TIME_ABSOLUTE or TIME_RELATIVE sequence: sample rate unknown")
    rate = round(rate) if abs(rate - round(rate)) < 1e-6 else rate
    return start, float(rate), tuple(leads)


def _read_annotation_sets(series, start: datetime | None, rate: float):
    annotations, measurements, statements = [], [], []
    for ann in _xs(series, "h:subjectOf/h:annotationSet//h:annotation"):
        code_el, value = _x(ann, "h:code"), _x(ann, "h:value")
        if value is None or code_el is None:
            continue
        kind = value.get(f"{{{XSI}}}type", "")
        lead = _roi_lead(ann)
        if kind == "PQ":
            name, shown = code_el.get("code", ""), code_el.get("displayName", "")
            name = shown if shown and re.sub(r"\s", "_", shown) == name else name
            measurements.append(Measurement(name, float(value.get("value")), value.get("unit", ""), lead))
        elif kind == "ST":
            statements.append((value.text or "").strip())
        elif kind in ("CE", "CD", "CV"):
            span = _roi_span(ann, start, rate)
            if span is not None:
                original = _x(value, "h:originalText")
                code = (original.text or "") if original is not None else value.get("code", "")
                annotations.append(Annotation(span[0], code, value.get("displayName", "") or "", span[1], lead))
    return tuple(annotations), tuple(measurements), tuple(statements)


def _own_boundaries(ann):
    """Boundaries of this annotation's own ROI (not of nested annotations)."""
    return _xs(ann, "h:support/h:supportingROI/h:component/h:boundary")


def _roi_lead(ann) -> str | None:
    for boundary in _own_boundaries(ann):
        code = _x(boundary, "h:code").get("code", "")
        if code and code not in ("TIME_ABSOLUTE", "TIME_RELATIVE"):
            return canonical_lead_name(code)
    return None


def _roi_span(ann, start: datetime | None, rate: float) -> tuple[int, int | None] | None:
    for boundary in _own_boundaries(ann):
        code = _x(boundary, "h:code").get("code", "")
        value = _x(boundary, "h:value")
        if code not in ("TIME_ABSOLUTE", "TIME_RELATIVE") or value is None:
            continue
        low, high = _x(value, "h:low"), _x(value, "h:high")
        if value.get("value") is not None:  # a single PQ point
            low, high = value, None
        points = [_to_sample(el, code, start, rate) if el is not None else None for el in (low, high)]
        if points[0] is None and points[1] is None:
            return None
        return (points[0], points[1]) if points[0] is not None else (points[1], None)
    return None


def _to_sample(el, code: str, start: datetime | None, rate: float) -> int | None:
    text = el.get("value")
    if text is None:
        return None
    if code == "TIME_ABSOLUTE":
        if start is None:
            return None
        return int(round((parse_ts(text) - start).total_seconds() * rate))
    return int(round(float(text) * _TIME_UNITS.get(el.get("unit", "s"), 1.0) * rate))


def _read_patient(root) -> Patient:
    subject = _x(root, ".//h:trialSubject")
    if subject is None:
        return Patient()
    pid = _x(subject, "h:id")
    person = _x(subject, "h:subjectDemographicPerson")
    name = sex = ""
    birth = None
    if person is not None:
        name = " ".join("".join(_x(person, "h:name").itertext()).split()) if _x(person, "h:name") is not None else ""
        gender = _x(person, "h:administrativeGenderCode")
        sex = gender.get("code", "") if gender is not None else ""
        born = _x(person, "h:birthTime")
        birth = parse_ts(born.get("value")).date() if born is not None and born.get("value") else None
    age = None
    for obs in _xs(root, "h:controlVariable/h:relatedObservation"):
        if _x(obs, "h:code") is not None and _x(obs, "h:code").get("code") == "21612-7":
            value = _x(obs, "h:value")
            age = float(value.get("value")) if value is not None and value.get("unit", "a") == "a" else None
    return Patient(id=pid.get("extension", "") if pid is not None else "", name=name, sex=sex, birth_date=birth, age_years=age)


def _read_device(series) -> Device:
    author = _x(series, "h:author/h:seriesAuthor")
    if author is None:
        return Device()

    def text(path: str) -> str:
        el = _x(author, path)
        return (el.text or "").strip() if el is not None else ""

    serial = _x(author, "h:manufacturedSeriesDevice/h:id")
    return Device(manufacturer=text("h:manufacturerOrganization/h:name"), model=text("h:manufacturedSeriesDevice/h:manufacturerModelName"),
                  serial=serial.get("extension", "") if serial is not None else "", software=text("h:manufacturedSeriesDevice/h:softwareName"))


# ---------------------------------------------------------------- writing
def _el(parent, tag: str, text: str | None = None, **attrs: str):
    node = etree.SubElement(parent, _Q + tag, {k.rstrip("_"): v for k, v in attrs.items() if v is not None})
    if text is not None:
        node.text = text
    return node


def _typed(parent, tag: str, xsi_type: str, **attrs: str):
    node = _el(parent, tag, **attrs)
    node.set(f"{{{XSI}}}type", xsi_type)
    return node


def lead_code(name: str) -> tuple[str, str]:
    canonical = canonical_lead_name(name)
    if canonical in ("I", "II", "III", "aVR", "aVL", "aVF") or re.fullmatch(r"V\d+R?|X|Y|Z", canonical):
        return f"MDC_ECG_LEAD_{canonical.upper()}", MDC
    return name, LOCAL_CODES


def build_aecg(record: EcgRecord, *, document_id: str | None = None) -> etree._ElementTree:
    root = etree.Element(_Q + "AnnotatedECG", nsmap={None: NS, "xsi": XSI}, type="Observation")
    _el(root, "id", root=document_id or str(uuid.uuid5(uuid.NAMESPACE_OID, f"{record.patient.id}|{record.start_time}|{record.n_samples}")))
    _el(root, "code", code="93000", codeSystem="2.16.840.1.113883.6.12", codeSystemName="CPT-4")
    start = record.start_time
    _el(_el(root, "effectiveTime"), "center", value=format_ts(start) if start else None, nullFlavor=None if start else "UNK")
    _write_subject(root, record.patient)
    if record.patient.age_years is not None:
        obs = _el(_el(root, "controlVariable"), "relatedObservation")
        _el(obs, "code", code="21612-7", codeSystem="2.16.840.1.113883.6.1", codeSystemName="LOINC")
        _typed(obs, "value", "PQ", value=f"{record.patient.age_years:g}", unit="a")
    series = _el(_el(root, "component"), "series")
    _el(series, "code", code="RHYTHM", codeSystem=ACT_CODE)
    span = _el(series, "effectiveTime")
    if start:
        _el(span, "low", value=format_ts(start))
        _el(span, "high", value=format_ts(start + timedelta(seconds=record.duration_s)))
    else:
        _el(span, "low", nullFlavor="UNK")
    _write_device(series, record.device)
    _write_sequences(_el(_el(series, "component"), "sequenceSet"), record)
    if record.annotations or record.measurements or record.interpretation:
        _write_annotations(_el(_el(series, "subjectOf"), "annotationSet"), record)
    return etree.ElementTree(root)


def _write_subject(root, patient: Patient) -> None:
    assignment = _el(_el(_el(root, "componentOf"), "timepointEvent"), "componentOf")
    assignment = _el(assignment, "subjectAssignment")
    subject = _el(_el(assignment, "subject"), "trialSubject")
    _el(subject, "id", root="2.16.840.1.113883.3.400", extension=patient.id or None, nullFlavor=None if patient.id else "UNK")
    if patient.name or patient.sex or patient.birth_date:
        person = _el(subject, "subjectDemographicPerson")
        if patient.name:
            _el(person, "name", patient.name)
        if patient.sex:
            _el(person, "administrativeGenderCode", code=patient.sex, codeSystem="2.16.840.1.113883.5.1")
        if patient.birth_date:
            _el(person, "birthTime", value=patient.birth_date.strftime("%Y%m%d"))
    trial = _el(_el(assignment, "componentOf"), "clinicalTrial")
    _el(trial, "id", root="2.16.840.1.113883.3.400", extension="DEVSYNC")


def _write_device(series, device: Device) -> None:
    if not any((device.manufacturer, device.model, device.serial, device.software)):
        return
    author = _el(_el(series, "author"), "seriesAuthor")
    dev = _el(author, "manufacturedSeriesDevice")
    _el(dev, "id", extension=device.serial or None, nullFlavor=None if device.serial else "UNK")
    if device.model:
        _el(dev, "manufacturerModelName", device.model)
    if device.software:
        _el(dev, "softwareName", device.software)
    if device.manufacturer:
        _el(_el(author, "manufacturerOrganization"), "name", device.manufacturer)


def _write_sequences(seq_set, record: EcgRecord) -> None:
    seq = _el(_el(seq_set, "component"), "sequence")
    step = f"{1.0 / record.sample_rate:.12g}"
    if record.start_time:
        _el(seq, "code", code="TIME_ABSOLUTE", codeSystem=ACT_CODE)
        value = _typed(seq, "value", "GLIST_TS")
        _el(value, "head", value=format_ts(record.start_time))
    else:
        _el(seq, "code", code="TIME_RELATIVE", codeSystem=ACT_CODE)
        value = _typed(seq, "value", "GLIST_PQ")
        _el(value, "head", value="0", unit="s")
    _el(value, "increment", value=step, unit="s")
    for lead in record.leads:
        seq = _el(_el(seq_set, "component"), "sequence")
        code, system = lead_code(lead.name)
        _el(seq, "code", code=code, codeSystem=system)
        value = _typed(seq, "value", "SLIST_PQ")
        _el(value, "origin", value=f"{-lead.baseline * lead.scale:.12g}", unit=lead.unit)
        _el(value, "scale", value=f"{lead.scale:.12g}", unit=lead.unit)
        _el(value, "digits", " ".join(map(str, lead.digital.tolist())))


def _write_annotations(ann_set, record: EcgRecord) -> None:
    if record.start_time:
        _el(ann_set, "activityTime", value=format_ts(record.start_time))
    for text in record.interpretation:
        ann = _el(_el(ann_set, "component"), "annotation")
        _el(ann, "code", code=INTERPRETATION_CODE, codeSystem=MDC)
        _typed(ann, "value", "ST").text = text
    for m in record.measurements:
        ann = _el(_el(ann_set, "component"), "annotation")
        spaced = bool(re.search(r"\s", m.name))
        _el(ann, "code", code=re.sub(r"\s", "_", m.name), codeSystem=MDC, displayName=m.name if spaced else None)
        _typed(ann, "value", "PQ", value=f"{m.value:g}", unit=m.unit or "1")
        if m.lead:
            _roi(ann, record, None, m.lead)
    for a in record.annotations:
        ann = _el(_el(ann_set, "component"), "annotation")
        parent = next((p for prefix, p in _ANNOTATION_PARENTS if a.code.startswith(prefix)), "ANNOTATION")
        _el(ann, "code", code=parent, codeSystem=MDC if parent != "ANNOTATION" else LOCAL_CODES)
        system = MDC if a.code.startswith("MDC_") else LOCAL_CODES
        value = _typed(ann, "value", "CE", code=re.sub(r"\s", "_", a.code), codeSystem=system, displayName=a.text or None)
        if re.search(r"\s", a.code):
            _el(value, "originalText", a.code)
        _roi(ann, record, a, a.lead)


def _roi(ann, record: EcgRecord, a: Annotation | None, lead: str | None) -> None:
    roi = _el(_el(ann, "support"), "supportingROI", classCode="ROIBND")
    _el(roi, "code", code="ROIPS", codeSystem=ACT_CODE)
    if a is not None:
        boundary = _el(_el(roi, "component"), "boundary")
        if record.start_time:
            _el(boundary, "code", code="TIME_ABSOLUTE", codeSystem=ACT_CODE)
            value = _typed(boundary, "value", "IVL_TS")
            to_text = lambda s: format_ts(record.start_time + timedelta(seconds=s / record.sample_rate))
            _el(value, "low", value=to_text(a.sample))
            if a.end_sample is not None:
                _el(value, "high", value=to_text(a.end_sample))
        else:
            _el(boundary, "code", code="TIME_RELATIVE", codeSystem=ACT_CODE)
            value = _typed(boundary, "value", "IVL_PQ")
            _el(value, "low", value=f"{a.sample / record.sample_rate:.9g}", unit="s")
            if a.end_sample is not None:
                _el(value, "high", value=f"{a.end_sample / record.sample_rate:.9g}", unit="s")
    if lead:
        code, system = lead_code(lead)
        _el(_el(_el(roi, "component"), "boundary"), "code", code=code, codeSystem=system)


def write_aecg(record: EcgRecord, path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    build_aecg(record).write(str(out), xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return out
