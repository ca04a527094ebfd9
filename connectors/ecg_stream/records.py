"""Waveform events back to ECG records, e.g. a partial record as an ecgAware file (pure).

    record = record_from_waveform(partial_event)             # Session(partial=True, alarm=..., alarm_time=...)
    write_ecg(record, "alarm.ecgaware.xml")                    # connectors.ecg writes any writable format

Times: the record's start is the corrected (true) time of the first sample, in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from connectors.ecg.model import Device, EcgRecord, Lead, Patient, Session, canonical_lead_name
from connectors.ecg_stream.events import PARTIAL_STATUS
from hub.errors import RuleError
from hub.events import Event


def record_from_waveform(event: Event) -> EcgRecord:
    wave = event.waveform
    if wave is None:
        raise RuleError(f"record_from_waveform: event {event.event_id} ({event.kind}) carries no waveform")
    offset = event.clock_offset
    start = datetime.fromtimestamp(wave.start_time + offset, tz=UTC).replace(tzinfo=None)
    leads = tuple(Lead(canonical_lead_name(name), np.asarray(samples, dtype=np.int32), wave.factor,
                       float(wave.baseline), wave.unit) for name, samples in zip(wave.leads, wave.samples, strict=True))
    alarm = event.alarm
    session = Session(
        location=event.location or (event.patient.location if event.patient and event.patient.location else "") or "",
        alarm=(alarm.text or alarm.condition) if alarm else "",
        alarm_time=datetime.fromtimestamp(event.effective_time, tz=UTC).replace(tzinfo=None) if alarm else None,
        record_id=event.event_id, partial=event.status == PARTIAL_STATUS)
    patient = Patient(id=event.patient.patient_id, name=event.patient.patient_name or "") if event.patient else Patient()
    device = Device(manufacturer=event.device.manufacturer or "", model=event.device.model or "",
                    serial=event.device.serial or "")
    return EcgRecord(leads=leads, sample_rate=wave.sample_rate_hz, start_time=start, patient=patient, device=device,
                     session=session, source_format="ecg-stream")
