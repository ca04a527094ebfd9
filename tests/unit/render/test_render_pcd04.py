"""build_oru_r40 (IHE PCD-04 Report Alert): facets, phases, states, priorities; each output validated
segment by segment with hl7apy (strict) and parsed with python-hl7."""

from __future__ import annotations

import pytest
from render_helpers import field, segments

from hub.errors import RuleError
from hub.events import AlarmPhase, AlarmPriority, AlarmState
from hub.render.pcd04 import build_oru_r40
from hub.render.samples import T0
from hub.render.validate import validate_oru_r40


def render(alarm, ctx, control_id="HUBA0001"):
    message = build_oru_r40(alarm, ctx, control_id=control_id, message_time=T0 + 0.5)
    validate_oru_r40(message)
    return message


def facets(message) -> dict[str, tuple[str, str]]:
    """OBX-3 reference id -> (OBX-4, OBX-5) for each OBX."""
    return {field(s, 3, 2): (field(s, 4), field(s, 5)) for s in segments(message, "OBX")}


def test_physiological_alarm(ctx, alarm_factory):
    message = render(alarm_factory(), ctx)
    msh = segments(message, "MSH")[0]
    assert field(msh, 9) == "ORU^R40^ORU_R40" and field(msh, 12) == "2.6"
    assert field(msh, 21, 1) == "IHE_PCD_ACM_001"
    obr = segments(message, "OBR")[0]
    assert field(obr, 2) == "HUBA0001^DEVSYNC"
    assert field(obr, 3) == "ALM-0001^DEVSYNC"
    assert field(obr, 4) == "196616^MDC_EVT_ALARM^MDC"
    assert field(obr, 7) == "20251121044000.0000+0000"
    assert field(obr, 29) == "^ALM-0001&DEVSYNC"
    first, source = segments(message, "OBX")[:2]
    assert field(first, 3) == "196670^MDC_EVT_LO^MDC" and field(first, 5) == "SpO2 low"
    assert field(first, 4) == "1.1.1.150456.1"
    assert field(first, 8) == "L~PM~SP"
    assert field(first, 14) == "20251121044000.0000+0000"
    assert field(first, 18) == "00A0960000000007^^00A0960000000007^EUI-64"
    assert field(source, 3) == "150456^MDC_PULS_OXIM_SAT_O2^MDC" and field(source, 4) == "1.1.1.150456.2"
    assert (field(source, 2), field(source, 5)) == ("NM", "86")
    assert field(source, 6) == "262688^MDC_DIM_PERCENT^MDC^%^%^UCUM"
    assert facets(message)["MDC_ATTR_EVENT_PHASE"] == ("1.1.1.150456.3", "start")
    assert facets(message)["MDC_ATTR_ALARM_STATE"] == ("1.1.1.150456.4", "active")
    assert facets(message)["MDC_ATTR_ALARM_INACTIVATION_STATE"] == ("1.1.1.150456.5", "enabled")
    assert facets(message)["MDC_ATTR_ALARM_PRIORITY"] == ("1.1.1.150456.6", "PM")
    assert facets(message)["MDC_ATTR_ALERT_TYPE"] == ("1.1.1.150456.7", "SP")
    pid = segments(message, "PID")[0]
    assert field(pid, 3, 1) == "MRN0001"


def test_technical_alarm_names_the_device_as_source(ctx, alarm_factory):
    alarm = alarm_factory(device_id="PUMP-01", condition="MDC_EVT_FLUID_LINE_OCCL", text="Occlusion",
                          source_metric=None, value=None, priority=AlarmPriority.HIGH)
    message = render(alarm, ctx)
    first, source = segments(message, "OBX")[:2]
    assert field(first, 2) == "CWE" and field(first, 3) == "196616^MDC_EVT_ALARM^MDC"
    assert field(first, 5) == "196940^MDC_EVT_FLUID_LINE_OCCL^MDC^^^^^^Occlusion"
    assert field(first, 4) == "1.0.0.0.1" and field(first, 8) == "PH~ST"
    assert field(source, 3) == "68480^MDC_ATTR_ALERT_SOURCE^MDC"
    assert field(source, 5) == "69985^MDC_DEV_PUMP_INFUS_MDS^MDC"


@pytest.mark.parametrize(
    ("phase", "state", "phase_text", "state_text", "inactivation"),
    [
        (AlarmPhase.START, AlarmState.ACTIVE, "start", "active", "enabled"),
        (AlarmPhase.UPDATE, AlarmState.ACKNOWLEDGED, "update", "active", "alert-acknowledged"),
        (AlarmPhase.UPDATE, AlarmState.LATCHED, "update", "latched", "enabled"),
        (AlarmPhase.END, AlarmState.INACTIVE, "end", "inactive", "enabled"),
    ],
)
def test_phase_and_state(ctx, alarm_factory, phase, state, phase_text, state_text, inactivation):
    found = facets(render(alarm_factory(phase=phase, state=state), ctx))
    assert found["MDC_ATTR_EVENT_PHASE"][1] == phase_text
    assert found["MDC_ATTR_ALARM_STATE"][1] == state_text
    assert found["MDC_ATTR_ALARM_INACTIVATION_STATE"][1] == inactivation


@pytest.mark.parametrize(
    ("priority", "code", "alert_type"),
    [(AlarmPriority.HIGH, "PH", "SP"), (AlarmPriority.MEDIUM, "PM", "SP"), (AlarmPriority.LOW, "PL", "SP"),
     (AlarmPriority.INFO, "PN", "SA")],
)
def test_priority_in_obx8_and_its_own_facet(ctx, alarm_factory, priority, code, alert_type):
    message = render(alarm_factory(priority=priority), ctx)
    assert field(segments(message, "OBX")[0], 8) == f"L~{code}~{alert_type}"
    assert facets(message)["MDC_ATTR_ALARM_PRIORITY"][1] == code
    assert facets(message)["MDC_ATTR_ALERT_TYPE"][1] == alert_type


def test_alarm_id_is_stable_across_phases_and_indications_are_not(ctx, alarm_factory):
    start = render(alarm_factory(phase=AlarmPhase.START), ctx, control_id="A1")
    end = render(alarm_factory(phase=AlarmPhase.END, state=AlarmState.INACTIVE, t=T0 + 40), ctx, control_id="A2")
    obr_start, obr_end = segments(start, "OBR")[0], segments(end, "OBR")[0]
    assert field(obr_start, 3) == field(obr_end, 3) and field(obr_start, 29) == field(obr_end, 29)
    assert field(obr_start, 2) != field(obr_end, 2)
    assert field(obr_end, 7) == "20251121044040.0000+0000"


def test_location_only_alarm_has_an_empty_patient(ctx, alarm_factory):
    message = render(alarm_factory(patient=None), ctx)
    pid = segments(message, "PID")[0]
    assert field(pid, 3) == "" and field(pid, 5) == "^^^^^^U"
    assert field(segments(message, "PV1")[0], 3) == "ICU1-BED02"  # OXI-02's bed from the inventory


def test_vendor_condition_and_text_are_escaped(ctx, alarm_factory):
    alarm = alarm_factory(condition="ACME|LEAD^OFF", text="Lead off & check ~V1~", source_metric=None, value=None)
    first = segments(render(alarm, ctx), "OBX")[0]
    assert field(first, 5, 1) == "ACME|LEAD^OFF"
    assert field(first, 5, 3) == "99DEVSYNC"
    assert field(first, 5, 9) == "Lead off & check ~V1~"


def test_rejects_non_alarm_events(ctx, event_factory):
    with pytest.raises(RuleError, match="only alarm events"):
        build_oru_r40(event_factory(), ctx, control_id="A", message_time=T0)
