"""DICOM ECG waveforms (12-lead, General and Ambulatory ECG Waveform Storage) with pydicom.

Read: the RHYTHM multiplex group (or the first group), channel sensitivity/correction/
baseline/units, lead names from the Channel Source code meaning (SCPECG/MDC) or the
channel label, patient, acquisition date-time, equipment, and the Waveform Annotation
sequence (points/segments -> annotations, numeric values -> measurements, free text
without a position -> interpretation). Median beats and other groups are not read.
Write (`build_dicom_ecg` -> Dataset, `write_dicom`): picks the SOP class from the lead
count, rate and duration; samples are 16-bit signed; ids are stable for the same record.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pydicom.valuerep import DSfloat

from connectors.ecg.exceptions import EcgFormatError, EcgWriteError
from connectors.ecg.model import (
    UNIT_TO_UV,
    Annotation,
    Device,
    EcgRecord,
    Lead,
    Measurement,
    Patient,
    canonical_lead_name,
    fit_int16,
)
from connectors.ecg.scp import LEAD_NAMES

TWELVE_LEAD_ECG = "1.2.840.10008.5.1.4.1.1.9.1.1"
GENERAL_ECG = "1.2.840.10008.5.1.4.1.1.9.1.2"
AMBULATORY_ECG = "1.2.840.10008.5.1.4.1.1.9.1.3"
ECG_SOP_CLASSES = {TWELVE_LEAD_ECG: "12-lead ECG", GENERAL_ECG: "General ECG", AMBULATORY_ECG: "Ambulatory ECG"}
UID_PREFIX = "1.2.826.0.1.3680043.10.1443."  # pydicom-registered root space used with entropy-derived suffixes
_SCP_LEAD_IDS = {name: lead_id for lead_id, name in LEAD_NAMES.items()}
_UCUM = {"uV": "microvolt", "mV": "millivolt", "V": "volt"}


# ---------------------------------------------------------------- reading
def read_dicom(path: str | Path) -> EcgRecord:
    try:
        ds = pydicom.dcmread(str(path))
    except Exception as exc:  # pydicom raises InvalidDicomError and assorted parse errors
        raise EcgFormatError(path, f"not a readable DICOM file: {exc}") from exc
    if "WaveformSequence" not in ds:
        raise EcgFormatError(path, f"DICOM object {ds.get('SOPClassUID', '?')} has no WaveformSequence")
    groups = list(ds.WaveformSequence)
    index = next((i for i, g in enumerate(groups) if str(g.get("MultiplexGroupLabel", "")).upper() == "RHYTHM"), 0)
    group = groups[index]
    raw = _raw_samples(path, group)
    leads = tuple(_lead(ch, raw[:, i]) for i, ch in enumerate(group.ChannelDefinitionSequence))
    annotations, measurements, statements = _read_annotations(ds, index + 1, [lead.name for lead in leads])
    return EcgRecord(
        leads=leads,
        sample_rate=float(group.SamplingFrequency),
        start_time=_start_time(ds),
        patient=_read_patient(ds),
        device=Device(
            manufacturer=str(ds.get("Manufacturer", "") or ""),
            model=str(ds.get("ManufacturerModelName", "") or ""),
            serial=str(ds.get("DeviceSerialNumber", "") or ""),
            software=str(ds.get("SoftwareVersions", "") or ""),
        ),
        annotations=annotations,
        measurements=measurements,
        interpretation=statements,
        source_format="dicom",
    )


def _raw_samples(path, group: Dataset) -> np.ndarray:
    bits, kind = int(group.WaveformBitsAllocated), str(group.WaveformSampleInterpretation)
    dtypes = {(16, "SS"): "<i2", (16, "US"): "<u2", (8, "SB"): "i1", (8, "UB"): "u1", (32, "SL"): "<i4", (32, "UL"): "<u4"}
    if (bits, kind) not in dtypes:
        raise EcgFormatError(path, f"waveform sample interpretation {kind}/{bits} bits is not supported (SS/US/SB/UB/SL/UL)")
    channels, samples = int(group.NumberOfWaveformChannels), int(group.NumberOfWaveformSamples)
    data = np.frombuffer(group.WaveformData, dtype=dtypes[(bits, kind)])
    if data.size < channels * samples:
        raise EcgFormatError(path, f"WaveformData holds {data.size} values, header says {channels} x {samples}")
    return data[: channels * samples].reshape(samples, channels).astype(np.int32)


def _lead(channel: Dataset, counts: np.ndarray) -> Lead:
    source = channel.ChannelSourceSequence[0] if channel.get("ChannelSourceSequence") else None
    name = str(source.CodeMeaning) if source is not None and source.get("CodeMeaning") else str(channel.get("ChannelLabel", "?"))
    scale = float(channel.get("ChannelSensitivity", 1.0) or 1.0) * float(channel.get("ChannelSensitivityCorrectionFactor", 1.0) or 1.0)
    unit = "uV"
    if channel.get("ChannelSensitivityUnitsSequence"):
        unit = str(channel.ChannelSensitivityUnitsSequence[0].CodeValue)
    baseline = -float(channel.get("ChannelBaseline", 0.0) or 0.0) / scale
    return Lead(canonical_lead_name(name), counts, scale, baseline, unit)


def _start_time(ds: Dataset) -> datetime | None:
    text = str(ds.get("AcquisitionDateTime", "") or "")
    if not text and ds.get("ContentDate"):
        text = str(ds.ContentDate) + str(ds.get("ContentTime", "") or "")
    text = text.split("+")[0].split("-")[0]
    for fmt in ("%Y%m%d%H%M%S.%f", "%Y%m%d%H%M%S", "%Y%m%d%H%M", "%Y%m%d"):
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    return None


def _read_patient(ds: Dataset) -> Patient:
    birth = None
    if ds.get("PatientBirthDate"):
        try:
            birth = datetime.strptime(str(ds.PatientBirthDate), "%Y%m%d").date()
        except ValueError:
            birth = None
    age_text = str(ds.get("PatientAge", "") or "")
    age = float(age_text[:3]) if age_text[:3].isdigit() and age_text.endswith("Y") else None
    name = str(ds.get("PatientName", "") or "").replace("^", " ").strip()
    return Patient(id=str(ds.get("PatientID", "") or ""), name=name, sex=str(ds.get("PatientSex", "") or "")[:1],
                   birth_date=birth, age_years=age)


def _read_annotations(ds: Dataset, group_number: int, names: list[str]):
    annotations, measurements, statements = [], [], []
    for item in ds.get("WaveformAnnotationSequence", []):
        refs = [int(x) for x in _as_list(item.get("ReferencedWaveformChannels", []))]
        if refs and refs[0] not in (group_number, 0):
            continue
        channel = refs[1] if len(refs) > 1 else 0
        lead = names[channel - 1] if 0 < channel <= len(names) else None
        concept = item.ConceptNameCodeSequence[0] if item.get("ConceptNameCodeSequence") else None
        code = str(concept.CodeMeaning or concept.CodeValue) if concept is not None else ""
        text = str(item.get("UnformattedTextValue", "") or "")
        positions = [int(x) for x in _as_list(item.get("ReferencedSamplePositions", []))]
        if item.get("NumericValue") is not None and concept is not None:
            unit = str(item.MeasurementUnitsCodeSequence[0].CodeValue) if item.get("MeasurementUnitsCodeSequence") else ""
            measurements.append(Measurement(code, float(item.NumericValue), unit, lead))
        elif positions:
            end = positions[-1] - 1 if len(positions) > 1 else None
            annotations.append(Annotation(positions[0] - 1, code or text, text if code else "", end, lead))
        elif text:
            statements.append(text)
    return tuple(annotations), tuple(measurements), tuple(statements)


def _as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple, pydicom.multival.MultiValue)) else [value]


# ---------------------------------------------------------------- writing
def choose_sop_class(record: EcgRecord) -> str:
    n, fs, samples = len(record.leads), record.sample_rate, record.n_samples
    if n <= 13 and 200 <= fs <= 1000 and samples <= 16384:
        return TWELVE_LEAD_ECG
    if n <= 12 and 50 <= fs <= 1000 and record.duration_s > 60:
        return AMBULATORY_ECG
    if n <= 24 and 200 <= fs <= 1000:
        return GENERAL_ECG
    raise EcgWriteError("dicom", f"{n} leads at {fs:g} Hz for {record.duration_s:.0f} s fits no DICOM ECG IOD "
                        "(12-lead: <=13 leads, 200-1000 Hz, <=16384 samples; General: <=24 leads, 200-1000 Hz; "
                        "Ambulatory: <=12 leads, 50-1000 Hz)")


def record_uid(record: EcgRecord, kind: str) -> str:
    """A stable UID for the same record content (so a re-import is recognisable)."""
    digest = hashlib.sha256()
    digest.update(f"{kind}|{record.patient.id}|{record.start_time}|{record.sample_rate}|{record.n_samples}".encode())
    for lead in record.leads:
        digest.update(lead.name.encode())
        digest.update(np.ascontiguousarray(lead.digital[:4096]).tobytes())
    return generate_uid(prefix=UID_PREFIX, entropy_srcs=[digest.hexdigest()])


def build_dicom_ecg(record: EcgRecord, *, sop_class_uid: str | None = None, study_uid: str | None = None,
                    series_uid: str | None = None, instance_uid: str | None = None) -> Dataset:
    """Pure: the DICOM ECG dataset (with file meta) for `record`."""
    for lead in record.leads:
        if lead.unit.lower() not in UNIT_TO_UV:
            raise EcgWriteError("dicom", f"lead {lead.name!r} has unit {lead.unit!r}; DICOM ECG carries voltages (uV, mV)")
    sop_class = sop_class_uid or choose_sop_class(record)
    instance = instance_uid or record_uid(record, "instance")
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = instance
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, instance
    ds.StudyInstanceUID = study_uid or record_uid(record, "study")
    ds.SeriesInstanceUID = series_uid or record_uid(record, "series")
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "ECG", 1, 1
    ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName = record.session.study_id[:16], "", ""
    _write_patient(ds, record.patient)
    start = record.start_time
    stamp = start.strftime("%Y%m%d%H%M%S.%f") if start else ""
    ds.StudyDate = ds.ContentDate = start.strftime("%Y%m%d") if start else ""
    ds.StudyTime = ds.ContentTime = start.strftime("%H%M%S.%f") if start else ""
    ds.AcquisitionDateTime = stamp
    ds.Manufacturer = record.device.manufacturer
    ds.ManufacturerModelName = record.device.model
    if record.device.serial:
        ds.DeviceSerialNumber = record.device.serial
    if record.device.software:
        ds.SoftwareVersions = record.device.software
    ds.AcquisitionContextSequence = Sequence()
    leads = [fit_int16(lead) for lead in record.leads]
    ds.WaveformSequence = Sequence([_multiplex_group(record.sample_rate, leads)])
    ds.WaveformAnnotationSequence = Sequence(_annotation_items(record))
    return ds


def _write_patient(ds: Dataset, patient: Patient) -> None:
    ds.PatientID = patient.id
    ds.PatientName = patient.name.replace(" ", "^") if patient.name else ""
    ds.PatientSex = patient.sex if patient.sex in ("M", "F", "O") else ""
    ds.PatientBirthDate = patient.birth_date.strftime("%Y%m%d") if patient.birth_date else ""
    if patient.age_years is not None:
        ds.PatientAge = f"{int(patient.age_years):03d}Y"


def _multiplex_group(rate: float, leads: list[Lead]) -> Dataset:
    group = Dataset()
    group.MultiplexGroupTimeOffset = DSfloat(0)
    group.WaveformOriginality = "ORIGINAL"
    group.NumberOfWaveformChannels = len(leads)
    group.NumberOfWaveformSamples = len(leads[0].digital) if leads else 0
    group.SamplingFrequency = DSfloat(rate, auto_format=True)
    group.MultiplexGroupLabel = "RHYTHM"
    group.ChannelDefinitionSequence = Sequence([_channel(lead) for lead in leads])
    group.WaveformBitsAllocated = 16
    group.WaveformSampleInterpretation = "SS"
    data = np.column_stack([lead.digital for lead in leads]).astype("<i2") if leads else np.zeros((0,), "<i2")
    group.WaveformData = data.tobytes()
    return group


def _channel(lead: Lead) -> Dataset:
    channel = Dataset()
    source = Dataset()
    lead_id = _SCP_LEAD_IDS.get(canonical_lead_name(lead.name))
    source.CodeValue = f"5.6.3-9-{lead_id}" if lead_id else "5.6.3-9-0"
    source.CodingSchemeDesignator, source.CodingSchemeVersion = "SCPECG", "1.3"
    source.CodeMeaning = f"Lead {lead.name}" if lead_id else lead.name
    channel.ChannelSourceSequence = Sequence([source])
    channel.ChannelLabel = lead.name[:16]
    channel.ChannelSensitivity = DSfloat(lead.scale, auto_format=True)
    units = Dataset()
    unit = {"uv": "uV", "µv": "uV", "μv": "uV", "mv": "mV", "v": "V"}.get(lead.unit.lower(), lead.unit)
    units.CodeValue, units.CodingSchemeDesignator, units.CodeMeaning = unit, "UCUM", _UCUM.get(unit, unit)
    channel.ChannelSensitivityUnitsSequence = Sequence([units])
    channel.ChannelSensitivityCorrectionFactor = DSfloat(1)
    channel.ChannelBaseline = DSfloat(-lead.baseline * lead.scale, auto_format=True)
    channel.ChannelSampleSkew = DSfloat(0)
    channel.WaveformBitsStored = 16
    return channel


def _annotation_items(record: EcgRecord) -> list[Dataset]:
    names = record.lead_names
    items = []
    for text in record.interpretation:
        item = Dataset()
        item.UnformattedTextValue = text[:1024]
        item.ReferencedWaveformChannels = [1, 0]
        item.AnnotationGroupNumber = 0
        items.append(item)
    for m in record.measurements:
        item = _coded_item(m.name, names.index(m.lead) + 1 if m.lead in names else 0)
        item.NumericValue = DSfloat(m.value, auto_format=True)
        if m.unit:
            unit = Dataset()
            unit.CodeValue, unit.CodingSchemeDesignator, unit.CodeMeaning = m.unit, "UCUM", m.unit
            item.MeasurementUnitsCodeSequence = Sequence([unit])
        items.append(item)
    for a in record.annotations:
        item = _coded_item(a.code, names.index(a.lead) + 1 if a.lead in names else 0)
        if a.text:
            item.UnformattedTextValue = a.text[:1024]
        item.TemporalRangeType = "POINT" if a.end_sample is None else "SEGMENT"
        item.ReferencedSamplePositions = [a.sample + 1] if a.end_sample is None else [a.sample + 1, a.end_sample + 1]
        items.append(item)
    return items


def _coded_item(code: str, channel: int) -> Dataset:
    item, concept = Dataset(), Dataset()
    concept.CodeValue = code[:16] or "?"
    concept.CodingSchemeDesignator = "99DEVSYNC"
    concept.CodeMeaning = code[:64]
    item.ConceptNameCodeSequence = Sequence([concept])
    item.ReferencedWaveformChannels = [1, channel]
    item.AnnotationGroupNumber = 0
    return item


def write_dicom(record: EcgRecord, path: str | Path, **uids: str) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    build_dicom_ecg(record, **uids).save_as(str(out), enforce_file_format=True)
    return out
