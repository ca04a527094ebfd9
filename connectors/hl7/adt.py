"""ADT (the encounter feed) -> association events: which patient is in which bed, from when (pure).

    A01 admit, A04 register     bind    at PV1-3
    A02 transfer                unbind  at PV1-6 (prior location, when sent) + bind at PV1-3
    A03 discharge               unbind  at PV1-3
    A08 update patient info     update  at PV1-3 (may be empty)
    A11 cancel admit            cancel  at PV1-3 (source_message ADT^A11: undo the admit)
    A13 cancel discharge        cancel  at PV1-3 (source_message ADT^A13: the binding stands again)

Location = PV1-3 point of care, room and bed, the non-empty ones joined with '-'
('ICU1^^BED01' -> 'ICU1-BED01'), the form of devices[].location in the rules.
valid_from = EVN-6 (event occurred), else EVN-2 (recorded), else MSH-7.
Stream = 'adt/' + location (no patient identifiers in stream names); seq = MSH-7 in ms;
event id = sender + MSH-10 + role, so a redelivered ADT message is recognised.
"""

from __future__ import annotations

from connectors.hl7.common import (
    DecodeContext,
    check_processing_id,
    default_offset,
    encounter_of,
    location_of,
    message_time,
    patient_id_of,
    patient_name_of,
    read_time,
)
from connectors.hl7.errors import SEGMENT_SEQUENCE, Hl7Error, missing
from connectors.hl7.message import Message, field_of
from hub.events import (
    Association,
    DataClass,
    Device,
    Event,
    EventKind,
    PatientBinding,
    Provenance,
    Quality,
    make_event_id,
)

ACTIONS = {"A01": "bind", "A04": "bind", "A02": "bind", "A03": "unbind", "A08": "update", "A11": "cancel",
           "A13": "cancel"}
LOCATION_REQUIRED = frozenset({"A01", "A02"})
ADT_DEVICE_TYPE = "adt-feed"


def decode_adt(msg: Message, ctx: DecodeContext) -> list[Event]:
    header, delims = msg.header, msg.delims
    trigger = header.trigger
    processing = check_processing_id(header)
    offset = default_offset(header, ctx)
    sent = message_time(header, offset)
    evn, pid, pv1 = (_required(msg, name, trigger) for name in ("EVN", "PID", "PV1"))
    patient_id = patient_id_of(pid, delims)
    if patient_id is None:
        raise missing("PID", 3, "patient identifier list", hint="the hub binds beds to this id")
    location = location_of(field_of(pv1, 3), delims)
    if location is None and trigger in LOCATION_REQUIRED:
        raise missing("PV1", 3, "assigned patient location", hint=f"ADT^{trigger} binds the patient to this bed")
    if field_of(evn, 6):
        valid_from = read_time(evn[6], "EVN", 6, 1, offset, delims.component)
    elif field_of(evn, 2):
        valid_from = read_time(evn[2], "EVN", 2, 1, offset, delims.component)
    else:
        valid_from = sent
    encounter = encounter_of(pv1, delims)
    name = patient_name_of(pid, delims)
    app = header.component(3, 1) or "unknown"
    device = Device(id=f"adt-{app}", type=ADT_DEVICE_TYPE)
    provenance = Provenance(connector=ctx.connector, raw_ref=header.control_id)
    quality = frozenset({Quality.TEST}) if processing == "T" else frozenset()
    source = f"ADT^{trigger}"

    def event(action: str, at: str | None, role: str) -> Event:
        association = Association(action=action, location=at, patient_id=patient_id, encounter_id=encounter,
                                  patient_name=name, valid_from=valid_from, source_message=source)
        return Event(
            event_id=make_event_id(app, header.component(4, 1), header.control_id, role),
            kind=EventKind.ASSOCIATION,
            data_class=DataClass.ASSOCIATION,
            device=device,
            stream=f"adt/{at or device.id}",
            seq=max(0, round(sent * 1000)),
            device_time=valid_from,
            received_time=ctx.received_time,
            code_sent=source,
            code_system_sent="HL7",
            association=association,
            patient=PatientBinding(patient_id=patient_id, encounter_id=encounter, location=at, patient_name=name),
            location=at,
            quality=quality,
            provenance=provenance,
        )

    events = []
    if trigger == "A02":
        prior = location_of(field_of(pv1, 6), delims)
        if prior and prior != location:
            events.append(event("unbind", prior, "prior"))
    events.append(event(ACTIONS[trigger], location, "current"))
    return events


def _required(msg: Message, name: str, trigger: str) -> list[str]:
    seg = msg.first(name)
    if seg is None:
        raise Hl7Error(f"ADT^{trigger} has no {name} segment (required)", code=SEGMENT_SEQUENCE, segment=name)
    return seg
