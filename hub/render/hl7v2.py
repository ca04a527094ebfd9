"""HL7 v2.6 ORU^R01 following IHE PCD-01 (Communicate PCD Data): one message per patient.

    text = build_oru_r01(events, ctx, control_id="HUB000123", message_time=now)

Layout (compare ../shared/data/hl7v2/ihe_pcd01_*.hl7):
    MSH  ORU^R01^ORU_R01, MSH-10 control id, 2.6, AL/NE, MSH-21 IHE_PCD_001
    PID  PID-3 id^^^^MR, PID-5 name          PV1  PV1-2 I, PV1-3 location, PV1-19 encounter
    OBR  OBR-7 earliest observation time
    OBX  per device: MDS `n.0.0.0` (OBX-18 EUI-64), then VMD `n.v.0.0`, channel `n.v.c.0` and the
         metrics `n.v.c.m` in dictionary order (IHE PCD TF-2 B.8.4).
Pure string building: no hl7apy on this path. The tests validate every output with hl7apy (strict)
and python-hl7. OBX-4 numbers are positions in this message only: never use them as identities.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hub.errors import RuleError
from hub.events import DataClass, Event, EventKind, Quality
from hub.render import hierarchy
from hub.render.context import DeviceInfo, RenderContext
from hub.render.escape import escape_hl7, format_number, hl7_time, non_finite_flag
from hub.render.mdc import MdcTerm
from hub.render.segments import PCD01_PROFILE, build_msh, build_pid, build_pv1

MESSAGE_TYPE = "ORU^R01^ORU_R01"
SERVICE_ID = "182777000^monitoring of patient^SCT"
ST_MAX = 199  # HL7 v2.6 ST length; longer text goes as TX

# Quality flag -> OBX-8 code (IHE PCD TF-2 Table B.8.5-6 MeasurementStatus, B.8.5-7 missing data).
QUALITY_OBX8 = {
    Quality.INVALID: "INV",
    Quality.QUESTIONABLE: "QUES",
    Quality.CALIBRATING: "CAL",
    Quality.TEST: "TEST",
    Quality.DEMO: "DEMO",
    Quality.MISSING: "NAV",
}
OBX8_ORDER = ("INV", "QUES", "CAL", "TEST", "DEMO", "NAV", "NAN", "PINF", "NINF", "OTH")
NOT_OBTAINED = frozenset({Quality.INVALID, Quality.MISSING})  # OBX-11 X
AUTO_MEASUREMENT = "AMEAS^auto-measurement^MDC"
MANUAL_MEASUREMENT = "MMEAS^manual-measurement^MDC"
MANUAL_SETTING = "MSET^manual-setting^MDC"
RENDERED_KINDS = (EventKind.NUMERIC, EventKind.TEXT)


@dataclass(frozen=True, slots=True)
class _Template:
    """What is the same for every event of one shape (device, code, unit, kind): built once per context."""

    device: DeviceInfo
    term: MdcTerm
    vmd: MdcTerm | None
    chan: MdcTerm | None
    device_key: str  # the device id: devices are reported in this order
    vmd_code: int  # -1: no VMD (reported at position 0)
    chan_code: int  # -1: no channel
    head: str  # `|NM|code^ref^MDC|` (value type filled per event for text)
    unit_range: str  # `unit|range|`
    tail: str  # `|||method|equipment`


def build_oru_r01(observations: Sequence[Event], ctx: RenderContext, *, control_id: str, message_time: float) -> str:
    """Render the observations of ONE patient as a PCD-01 ORU^R01 (segments joined by CR, no trailing CR).

    Raises RuleError when the list is empty, mixes patients, holds an event without a patient
    binding or of a kind this message does not carry (alarms go to build_oru_r40), or when a
    metric has no MDC code in the rules.
    """
    if not observations:
        raise RuleError("build_oru_r01: no observations (a message needs at least one numeric or text event)")
    first = observations[0]
    patient = _check_patient(observations)
    segments = [
        build_msh(ctx, message_type=MESSAGE_TYPE, profile=PCD01_PROFILE, control_id=control_id,
                  message_time=message_time),
        build_pid(ctx, _named(observations) or patient),
        build_pv1(ctx.location_of(first), patient.encounter_id),
        "",  # OBR, once the earliest time is known
    ]
    earliest = _append_obx(segments, observations, ctx)
    segments[3] = _obr(ctx, control_id, earliest)
    return "\r".join(segments)


def _check_patient(observations: Sequence[Event]):
    first = observations[0]
    if first.patient is None:
        raise RuleError(f"build_oru_r01: event {first.event_id} has no patient binding (park it until associated)")
    patient_id = first.patient.patient_id
    for event in observations:
        if event.kind not in RENDERED_KINDS:
            raise RuleError(f"build_oru_r01: event {event.event_id} is of kind '{event.kind}'; ORU^R01 carries "
                            f"numeric and text events only (alarms: build_oru_r40)")
        if event.patient is None or event.patient.patient_id != patient_id:
            raise RuleError(f"build_oru_r01: event {event.event_id} is not bound to the same patient as event "
                            f"{first.event_id}; render one message per patient")
    return first.patient


def _named(observations: Sequence[Event]):
    return next((e.patient for e in observations if e.patient and e.patient.patient_name), None)


def _template(event: Event, ctx: RenderContext) -> _Template:
    device = event.device
    key = ("oru", device.id, device.type, device.eui64, event.kind, event.data_class, event.metric,
           event.mdc_code, event.mdc_ref, event.code_sent, event.code_system_sent, event.unit,
           bool(event.quality) and Quality.MANUAL in event.quality)
    template = ctx.templates.get(key)
    if template is None:
        template = ctx.template(key, lambda: _build_template(event, ctx))
    return template


def _build_template(event: Event, ctx: RenderContext) -> _Template:
    device = ctx.device_info(event.device)
    term = ctx.metric_term(event)
    family = hierarchy.family_for(event.metric, term.code, event.device.type)
    vmd, chan = family if family else (None, None)
    metric = ctx.metric(event.metric)
    unit = range_text = ""
    if event.kind is EventKind.NUMERIC and event.unit:
        unit = _unit_field(ctx.unit_term(metric, event.unit), event.unit)
        span = ctx.reference_range(metric, event.unit)
        if span is not None and span[0] >= 0:
            low, high = format_number(span[0]), format_number(span[1])
            range_text = f"{low}-{high}" if low is not None and high is not None else ""
    value_type = "NM" if event.kind is EventKind.NUMERIC else ""
    return _Template(device=device, term=term, vmd=vmd, chan=chan, device_key=event.device.id,
                     vmd_code=vmd.code if vmd else -1,
                     chan_code=chan.code if chan else -1,
                     head=f"|{value_type}|{term.code}^{escape_hl7(term.ref)}^MDC|",
                     unit_range=f"{unit}|{range_text}|", tail=f"|||{_method(event)}|{device.equipment_id}")


def _obr(ctx: RenderContext, control_id: str, earliest: float) -> str:
    order = escape_hl7(control_id) + "^" + ctx.hl7_app
    if ctx.hub_eui64:
        order += f"^{ctx.hub_eui64}^EUI-64"
    return f"OBR|1|{order}|{order}|{SERVICE_ID}|||{hl7_time(earliest)}"


def _append_obx(segments: list[str], observations: Sequence[Event], ctx: RenderContext) -> float:
    """Device-related and metric OBX rows in dictionary order: devices by id, then VMD / channel by MDC
    code (metrics outside a known VMD or channel first, as position 0), then metrics by time, code, id.
    Returns the earliest observation time (OBR-7)."""
    devices: dict[str, dict[int, dict[int, list]]] = {}
    earliest = float("inf")
    for event in observations:
        t = _template(event, ctx)
        when = event.corrected_time if event.corrected_time is not None else event.device_time
        earliest = min(earliest, when)
        row = (when, t.term.code, event.event_id, t, event)
        vmds = devices.get(t.device_key)
        if vmds is None:
            vmds = devices[t.device_key] = {}
        channels = vmds.get(t.vmd_code)
        if channels is None:
            channels = vmds[t.vmd_code] = {}
        rows = channels.get(t.chan_code)
        if rows is None:
            channels[t.chan_code] = [row]
        else:
            rows.append(row)
    set_id = 0
    append = segments.append
    for mds_number, device_id in enumerate(sorted(devices), start=1):
        vmds = devices[device_id]
        info = next(iter(next(iter(vmds.values())).values()))[0][3].device
        set_id += 1
        append(_device_obx(set_id, info.mds, f"{mds_number}.0.0.0", info.equipment_id))
        v = 0
        for vmd_code in sorted(vmds):
            channels = vmds[vmd_code]
            if vmd_code >= 0:
                v += 1
                set_id += 1
                append(_device_obx(set_id, _any_template(channels).vmd, f"{mds_number}.{v}.0.0", ""))
            c = 0
            metric_number = 0
            for chan_code in sorted(channels):
                rows = channels[chan_code]
                if chan_code >= 0:
                    c += 1
                    metric_number = 0
                    set_id += 1
                    append(_device_obx(set_id, rows[0][3].chan, f"{mds_number}.{v if vmd_code >= 0 else 0}.{c}.0", ""))
                prefix = f"{mds_number}.{v if vmd_code >= 0 else 0}.{c if chan_code >= 0 else 0}."
                rows.sort(key=_row_key)
                for row in rows:
                    metric_number += 1
                    set_id += 1
                    append(_metric_obx(set_id, row[3], row[4], row[0], prefix + str(metric_number), ctx))
    return earliest


def _any_template(channels: dict) -> _Template:
    return next(iter(channels.values()))[0][3]


def _row_key(row: tuple) -> tuple:
    return row[:3]


def _device_obx(set_id: int, term: MdcTerm, sub_id: str, equipment_id: str) -> str:
    obx = f"OBX|{set_id}||{term.code}^{term.ref}^MDC|{sub_id}|||||||X"
    return obx + "|||||||" + equipment_id if equipment_id else obx


def _metric_obx(set_id: int, t: _Template, event: Event, when: float, sub_id: str, ctx: RenderContext) -> str:
    quality = event.quality
    flags = [QUALITY_OBX8[q] for q in quality if q in QUALITY_OBX8] if quality else []
    status = "X" if quality and not NOT_OBTAINED.isdisjoint(quality) else ctx.result_status
    head = t.head
    if event.kind is EventKind.NUMERIC:
        value = ""
        if event.value is None:
            flags.append("NAV")
            status = "X"
        else:
            value = format_number(event.value)
            if value is None:
                flags.append(non_finite_flag(event.value))
                value, status = "", "X"
    else:
        value_type, value = _text_value(event, ctx)
        head = f"|{value_type}{head[1:]}"
        if not value:
            flags.append("NAV")
            status = "X"
    flags_text = "~".join(sorted(set(flags), key=OBX8_ORDER.index)) if flags else ""
    return (f"OBX|{set_id}{head}{sub_id}|{value}|{t.unit_range}{flags_text}|||{status}|||"
            f"{hl7_time(when)}{t.tail}")


def _unit_field(term: MdcTerm | None, ucum: str) -> str:
    u = escape_hl7(ucum)
    if term is None:
        return f"{u}^{u}^UCUM"
    return f"{term.code}^{term.ref}^MDC^{u}^{u}^UCUM"


def _text_value(event: Event, ctx: RenderContext) -> tuple[str, str]:
    text = event.text if event.text is not None else (event.value_sent if isinstance(event.value_sent, str) else "")
    term = ctx.term_for_text(text)
    if term is not None:
        return "CWE", f"{term.code}^{term.ref}^MDC"
    escaped = escape_hl7(text or "")
    return ("ST" if len(escaped) <= ST_MAX else "TX"), escaped


def _method(event: Event) -> str:
    if event.data_class is DataClass.SETTING:
        return MANUAL_SETTING
    if Quality.MANUAL in event.quality or event.data_class is DataClass.SPOT_CHECK:
        return MANUAL_MEASUREMENT
    return AUTO_MEASUREMENT
