"""IHE PCD-04 Report Alert (ACM): HL7 v2.6 ORU^R40 for one alarm event.

    text = build_oru_r40(alarm_event, ctx, control_id="HUBA000042", message_time=now)

Follows IHE PCD TF-2 Rev 9.0 B.7.1 (OBR), B.8.5 (OBX facets), B.8.6 (OBX-11 F) and the E.3
examples (../shared/data/hl7v2/ihe_pcd04_*.hl7):
    MSH  ORU^R40^ORU_R40, MSH-21 IHE_PCD_ACM_001
    PID / PV1   patient when bound (an alert may be location-only: PID-3 then empty)
    OBR  OBR-2 this indication (control id), OBR-3 the alarm id (same for start / update / end, as in
         the examples), OBR-4 196616^MDC_EVT_ALARM^MDC, OBR-7 time of this alarm event (its start
         for the start phase), OBR-29 parent = the alarm id
    OBX  facets `<MDS>.<VMD>.<CHAN>.<METRIC>.<facet>`:
         .1 event identification  (OBX-8 = [L|H~]priority~type, e.g. L~PM~SP; OBX-14 alarm time)
         .2 source identification (the source metric and its value, or MDC_ATTR_ALERT_SOURCE)
         .3 event phase  .4 alert state  .5 inactivation state
         .6 alarm priority  .7 alert type  (the separate-OBX form TF-2 asks new implementations for;
            the OBX-8 form is kept too, for Alert Managers that read only that)
Pure string building; the tests check every output segment by segment with hl7apy and python-hl7.
"""

from __future__ import annotations

from hub.errors import RuleError
from hub.events import AlarmPhase, AlarmPriority, AlarmState, Event, EventKind
from hub.render import hierarchy, mdc
from hub.render.context import RenderContext
from hub.render.escape import escape_hl7, format_number, hl7_time
from hub.render.mdc import MDC_EVT_ALARM, MdcTerm
from hub.render.segments import PCD04_PROFILE, build_msh, build_pid, build_pv1

MESSAGE_TYPE = "ORU^R40^ORU_R40"
PRIORITY = {AlarmPriority.HIGH: "PH", AlarmPriority.MEDIUM: "PM", AlarmPriority.LOW: "PL", AlarmPriority.INFO: "PN"}
# AlarmPhase -> MDC_ATTR_EVENT_PHASE value (TF-2 Table B.8.5-4: start, update and end are assigned values).
PHASE = {AlarmPhase.START: "start", AlarmPhase.UPDATE: "update", AlarmPhase.END: "end"}
# AlarmState -> (MDC_ATTR_ALARM_STATE, MDC_ATTR_ALARM_INACTIVATION_STATE); TF-2 B.8.5: acknowledged is an
# inactivation state of a still active alert ("alert-acknowledged", CP #126).
STATE = {
    AlarmState.ACTIVE: ("active", "enabled"),
    AlarmState.INACTIVE: ("inactive", "enabled"),
    AlarmState.LATCHED: ("latched", "enabled"),
    AlarmState.ACKNOWLEDGED: ("active", "alert-acknowledged"),
}
ABNORMALITY = {196648: "H", 196670: "L"}  # MDC_EVT_HI / MDC_EVT_LO
FACET = {name: MdcTerm(code, mdc.ALERT_ATTRIBUTES[code]) for name, code in (
    ("source", 68480), ("phase", 68481), ("state", 68482), ("inactivation", 68483), ("priority", 68484),
    ("type", 68485))}


def build_oru_r40(alarm: Event, ctx: RenderContext, *, control_id: str, message_time: float) -> str:
    """Render one alarm event (start, update or end) as a PCD-04 ORU^R40 (CR-separated, no trailing CR)."""
    if alarm.kind is not EventKind.ALARM or alarm.alarm is None:
        raise RuleError(f"build_oru_r40: event {alarm.event_id} is of kind '{alarm.kind}' without alarm details; "
                        f"only alarm events become PCD-04 reports")
    info = alarm.alarm
    device = ctx.device_info(alarm.device)
    when = hl7_time(alarm.effective_time)
    source = _source_term(alarm, ctx)
    alert_type = "SA" if info.priority is AlarmPriority.INFO else ("SP" if source else "ST")
    if source is not None:
        family = hierarchy.family_for(alarm.metric or info.source_metric, source.code, alarm.device.type)
        base = f"1.{1 if family else 0}.{1 if family else 0}.{source.code}"
    else:
        base = "1.0.0.0"
    condition = _condition(info.condition, ctx)
    flags = [ABNORMALITY[condition.code]] if condition and condition.code in ABNORMALITY else []
    flags += [PRIORITY[info.priority], alert_type]
    text = escape_hl7(info.text) if info.text else ""
    if source is not None and condition is not None:
        # Physiological alarm: OBX-3 is the alert's own event code, OBX-5 its text (TF-2 E.3.1).
        event_obx = f"OBX|1|ST|{condition.code}^{condition.ref}^MDC|{base}.1|{text or condition.ref}"
    else:
        event_obx = f"OBX|1|CWE|{MDC_EVT_ALARM.code}^{MDC_EVT_ALARM.ref}^MDC|{base}.1|{_condition_cwe(info, ctx)}"
    state, inactivation = STATE[info.state]
    segments = [
        build_msh(ctx, message_type=MESSAGE_TYPE, profile=PCD04_PROFILE, control_id=control_id,
                  message_time=message_time),
        build_pid(ctx, alarm.patient),
        build_pv1(ctx.location_of(alarm), alarm.patient.encounter_id if alarm.patient else None),
        _obr(ctx, control_id, escape_hl7(info.alarm_id), when),
        f"{event_obx}|||{'~'.join(flags)}|||F|||{when}||||{device.equipment_id}",
        _source_obx(alarm, ctx, source, base, when, device.mds),
        _facet_obx(3, "phase", base, PHASE[info.phase]),
        _facet_obx(4, "state", base, state),
        _facet_obx(5, "inactivation", base, inactivation),
        _facet_obx(6, "priority", base, PRIORITY[info.priority]),
        _facet_obx(7, "type", base, alert_type),
    ]
    return "\r".join(segments)


def _obr(ctx: RenderContext, control_id: str, alarm_id: str, when: str) -> str:
    app = ctx.hl7_app
    universal = f"^{ctx.hub_eui64}^EUI-64" if ctx.hub_eui64 else ""
    parent = f"^{alarm_id}&{app}" + (f"&{ctx.hub_eui64}&EUI-64" if ctx.hub_eui64 else "")
    return (f"OBR|1|{escape_hl7(control_id)}^{app}{universal}|{alarm_id}^{app}{universal}|"
            f"{MDC_EVT_ALARM.code}^{MDC_EVT_ALARM.ref}^MDC|||{when}" + "|" * 22 + parent)


def _source_term(alarm: Event, ctx: RenderContext) -> MdcTerm | None:
    """The physiological measurement behind the alarm, when known (None: a technical alert)."""
    metric_name = alarm.alarm.source_metric or alarm.metric
    if alarm.mdc_code is not None:
        return MdcTerm(alarm.mdc_code, alarm.mdc_ref or ctx.ref_by_code.get(alarm.mdc_code, ""))
    metric = ctx.metric(metric_name)
    if metric is not None:
        return MdcTerm(metric.mdc_code, metric.mdc_ref)
    return mdc.parse_term(metric_name)


def _condition(condition: str, ctx: RenderContext) -> MdcTerm | None:
    term = mdc.parse_term(condition)
    if term is None and condition in ctx.code_by_ref:
        term = MdcTerm(ctx.code_by_ref[condition], condition)
    return term


def _condition_cwe(info, ctx: RenderContext) -> str:
    """OBX-5 of a technical alert: the MDC alert code, or the vendor code in the local coding system;
    the alarm text as CWE-9 original text (as in TF-2 E.3.2)."""
    term = _condition(info.condition, ctx)
    text = escape_hl7(info.text) if info.text else ""
    if term is not None:
        head = f"{term.code}^{term.ref}^MDC"
    else:
        head = f"{escape_hl7(info.condition)}^{text}^{escape_hl7(ctx.local_code_system)}"
    return head + (f"^^^^^^{text}" if text else "")


def _source_obx(alarm: Event, ctx: RenderContext, source: MdcTerm | None, base: str, when: str,
                mds: MdcTerm) -> str:
    if source is None:
        return (f"OBX|2|CWE|{FACET['source'].code}^{FACET['source'].ref}^MDC|{base}.2|"
                f"{mds.code}^{mds.ref}^MDC||||||F|||{when}")
    value = format_number(alarm.value) if alarm.value is not None else None
    if value is None:
        return f"OBX|2|NM|{source.code}^{escape_hl7(source.ref)}^MDC|{base}.2|||||||F|||{when}"
    metric = ctx.metric(alarm.alarm.source_metric or alarm.metric)
    unit = ""
    if alarm.unit:
        term = ctx.unit_term(metric, alarm.unit)
        u = escape_hl7(alarm.unit)
        unit = f"{term.code}^{term.ref}^MDC^{u}^{u}^UCUM" if term else f"{u}^{u}^UCUM"
    return f"OBX|2|NM|{source.code}^{escape_hl7(source.ref)}^MDC|{base}.2|{value}|{unit}|||||F|||{when}"


def _facet_obx(set_id: int, facet: str, base: str, value: str) -> str:
    term = FACET[facet]
    return f"OBX|{set_id}|ST|{term.code}^{term.ref}^MDC|{base}.{set_id}|{value}||||||F"
