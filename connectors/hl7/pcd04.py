"""IHE PCD-04 ORU^R40 (alarm communication) -> alarm events (pure).

An alarm is a set of OBX rows sharing one path with a last 'facet' part (OBX-4
'1.0.0.0.1' ... '1.0.0.0.8'): .1 identifies the alarm (OBX-5 the condition, OBX-8 priority and
type, OBX-14 time, OBX-18 equipment), .2 its source, .3 the event phase, .4 the alarm state,
.5 the inactivation state, .6 the priority, .8 the text. Rows with a 4-part path describe the
device (MDS/VMD/channel) and pass their equipment id down, as in PCD-01.

The alarm instance id is OBR-3 (filler order number: the same on the start, update and end
messages of one alarm). A missing phase reads as an update; a missing state as active (inactive
when the phase is end). Event id = equipment + alarm id + phase + state + time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from connectors.hl7.common import (
    DecodeContext,
    check_processing_id,
    coded,
    default_offset,
    equipment_of,
    message_time,
    patient_binding,
    read_time,
)
from connectors.hl7.errors import SEGMENT_SEQUENCE, TABLE_VALUE_NOT_FOUND, Hl7Error, missing
from connectors.hl7.message import Message, components, field_of, repetitions, unescape
from connectors.hl7.pcd01 import Node, nearest_node, node_key, parse_path
from hub.events import (
    Alarm,
    AlarmPhase,
    AlarmPriority,
    AlarmState,
    DataClass,
    Event,
    EventKind,
    Provenance,
    Quality,
    make_event_id,
)

PRIORITIES = {"PH": AlarmPriority.HIGH, "PM": AlarmPriority.MEDIUM, "PL": AlarmPriority.LOW, "PI": AlarmPriority.INFO,
              "PN": AlarmPriority.INFO}
PHASES = {
    "start": AlarmPhase.START, "start-only": AlarmPhase.START, "tpoint": AlarmPhase.START,
    "continue": AlarmPhase.UPDATE, "update": AlarmPhase.UPDATE, "present": AlarmPhase.UPDATE,
    "escalate": AlarmPhase.UPDATE, "de-escalate": AlarmPhase.UPDATE, "deescalate": AlarmPhase.UPDATE,
    "end": AlarmPhase.END, "stop": AlarmPhase.END, "reset": AlarmPhase.END, "inactivate": AlarmPhase.END,
}
STATES = {"active": AlarmState.ACTIVE, "inactive": AlarmState.INACTIVE, "off": AlarmState.INACTIVE,
          "latched": AlarmState.LATCHED}
ACKNOWLEDGED = frozenset({"alert-acknowledged", "acknowledged", "alarm-acknowledged"})


@dataclass
class _Alarm:
    obr_seq: int
    obr_time: float
    obr_id: str
    rows: dict[int, tuple[int, list[str]]] = field(default_factory=dict)  # facet -> (OBX seq, segment)
    equipment: tuple = (None, None)  # (name, EUI-64) of the .1 row: own OBX-18, else inherited, else MSH-3


def decode_alarms(msg: Message, ctx: DecodeContext) -> list[Event]:
    header, delims = msg.header, msg.delims
    processing = check_processing_id(header)
    offset = default_offset(header, ctx)
    message_time(header, offset)
    sender = equipment_of(header.get(3), delims)
    alarms: dict[tuple[int, tuple[int, ...]], _Alarm] = {}
    tree: dict[tuple[int, ...], Node] = {}
    obr: tuple[int, float, str] | None = None
    obr_seq = obx_seq = 0
    for seg in msg.segments:
        if seg[0] == "OBR":
            obr_seq += 1
            if not field_of(seg, 7):
                raise missing("OBR", 7, "observation date/time", obr_seq, hint="the alarm's time when OBX-14 is empty")
            obr = (obr_seq, read_time(seg[7], "OBR", 7, obr_seq, offset, delims.component),
                   field_of(seg, 3).split(delims.component, 1)[0].strip())
            tree = {}
        elif seg[0] == "OBX":
            obx_seq += 1
            if obr is None:
                raise Hl7Error(f"OBX[{obx_seq}] comes before any OBR", code=SEGMENT_SEQUENCE, segment="OBX",
                               sequence=obx_seq)
            if not field_of(seg, 4):
                raise missing("OBX", 4, "observation sub-id", obx_seq, hint="PCD-04 needs the path and facet, e.g. 1.0.0.0.1")
            path = parse_path(seg[4], obx_seq)
            own = equipment_of(field_of(seg, 18), delims)
            parent = nearest_node(tree, path)
            equipment = own if own != (None, None) else (parent.equipment if parent else sender)
            if len(path) == 4:
                tree[node_key(path)] = Node(coded(field_of(seg, 3), delims)[1], equipment, None)
                continue
            alarm = alarms.setdefault((obr[0], path[:-1]), _Alarm(*obr))
            alarm.rows[path[-1]] = (obx_seq, seg)
            if path[-1] == 1:
                alarm.equipment = equipment
    if not alarms:
        raise Hl7Error(
            "ORU^R40 carries no alarm: expected OBX rows with a facet path such as 1.0.0.0.1 (MDC_EVT_ALARM)",
            code=SEGMENT_SEQUENCE,
            segment="OBX",
        )
    quality = frozenset({Quality.TEST}) if processing == "T" else frozenset()
    patient = patient_binding(msg) if ctx.bind_patient_from_pid else None
    provenance = Provenance(connector=ctx.connector, raw_ref=header.control_id)
    out = []
    for (_, key), alarm in alarms.items():
        out.append(_alarm_event(alarm, key, msg, ctx, offset, sender, quality, patient, provenance))
    return out


def _alarm_event(alarm, key, msg, ctx, offset, sender, quality, patient, provenance) -> Event:
    delims = msg.delims
    path_text = ".".join(str(p) for p in key)
    if 1 not in alarm.rows:
        seq = min(s for s, _ in alarm.rows.values())
        raise missing("OBX", 4, f"alarm identification row {path_text}.1", seq,
                      hint="each PCD-04 alarm needs its .1 row naming the alarm condition in OBX-5")
    seq, ident = alarm.rows[1]
    condition, condition_text, system = coded(field_of(ident, 5), delims)
    if not condition and not condition_text:
        raise missing("OBX", 5, "alarm condition", seq)
    when = read_time(ident[14], "OBX", 14, seq, offset, delims.component) if field_of(ident, 14) else alarm.obr_time
    priority = _priority(ident, alarm.rows, delims, ctx.default_alarm_priority)
    phase = _lookup(alarm.rows, 3, PHASES, "event phase", AlarmPhase.UPDATE)
    default_state = AlarmState.INACTIVE if phase is AlarmPhase.END else AlarmState.ACTIVE
    state = _lookup(alarm.rows, 4, STATES, "alarm state", default_state)
    if _facet_value(alarm.rows, 5).lower() in ACKNOWLEDGED and state is AlarmState.ACTIVE:
        state = AlarmState.ACKNOWLEDGED
    value_parts = components(field_of(ident, 5), delims)
    original_text = unescape(value_parts[8], delims) if len(value_parts) > 8 else ""  # CWE-9
    text = unescape(_facet_value(alarm.rows, 8), delims) or original_text or condition_text or condition
    source_metric = None
    if 2 in alarm.rows:
        s_code, s_text, _ = coded(field_of(alarm.rows[2][1], 3), delims)
        if s_text == "MDC_ATTR_ALERT_SOURCE" or s_code == "68480":
            s_code, s_text, _ = coded(field_of(alarm.rows[2][1], 5), delims)
        source_metric = s_text or s_code or None
    equipment = alarm.equipment if alarm.equipment != (None, None) else sender
    known = ctx.directory.resolve([equipment[1]], [equipment[0]])
    equipment_key = equipment[1] or equipment[0]
    alarm_id = alarm.obr_id or make_event_id(equipment_key, condition or condition_text, path_text)
    ms = max(0, round(when * 1000))
    ref = condition_text if condition_text.startswith("MDC_") else condition or condition_text
    return Event(
        event_id=make_event_id(equipment_key, "alarm", alarm_id, phase.value, state.value, ms),
        kind=EventKind.ALARM,
        data_class=DataClass.ALARM,
        device=known.device,
        stream=f"{known.device.id}/alarm/{ref}",
        seq=ms,
        device_time=when,
        received_time=ctx.received_time,
        code_sent=condition or condition_text,
        code_system_sent=system or None,
        mdc_code=int(condition) if system == "MDC" and condition.isdecimal() else None,
        mdc_ref=condition_text if condition_text.startswith("MDC_") else None,
        value_sent=condition or condition_text,
        text=text,
        source=known.source,
        quality=quality,
        alarm=Alarm(condition=ref, text=text, priority=priority, state=state, phase=phase, alarm_id=alarm_id,
                    source_metric=source_metric),
        patient=patient,
        location=known.location,
        provenance=provenance,
    )


def _facet_value(rows, facet: int) -> str:
    return field_of(rows[facet][1], 5).strip() if facet in rows else ""


def _lookup(rows, facet: int, table: dict, what: str, default):
    value = _facet_value(rows, facet)
    if not value:
        return default
    found = table.get(value.lower())
    if found is None:
        seq = rows[facet][0]
        raise Hl7Error(
            f"OBX[{seq}]-5 {what} '{value}' is not known (known: {', '.join(table)})",
            code=TABLE_VALUE_NOT_FOUND,
            segment="OBX",
            sequence=seq,
            position=5,
        )
    return found


def _priority(ident: list[str], rows, delims, default: AlarmPriority) -> AlarmPriority:
    explicit = _facet_value(rows, 6).upper()
    if explicit in PRIORITIES:
        return PRIORITIES[explicit]
    for flag in repetitions(field_of(ident, 8), delims):
        if flag.strip().upper() in PRIORITIES:
            return PRIORITIES[flag.strip().upper()]
    return default
