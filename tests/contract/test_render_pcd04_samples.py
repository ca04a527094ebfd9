"""Contract: our PCD-04 ORU^R40 against the real IHE PCD TF-2 E.3 B. Braun occlusion alarm (start, end).

hl7apy 1.3.5 has no ORU^R40 structure, so both messages are compared segment by segment and field by
field, and our messages are validated segment by segment (hl7apy strict) and parsed with python-hl7.
Known quirk of the example (in the spec itself): the start message's OBX|5 has one '|' too few, so
its OBX-11 is empty; the validator reports exactly that.
"""

from __future__ import annotations

import calendar
from pathlib import Path

import hl7
import pytest

from hub.events import AlarmPhase, AlarmPriority, AlarmState, PatientBinding
from hub.render.context import RenderContext
from hub.render.pcd04 import build_oru_r40
from hub.render.samples import sample_alarm
from hub.render.validate import InvalidOutputError, validate_oru_r40
from hub.rules.load import load_rules

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data" / "hl7v2"
RULES = load_rules(REPO / "rules")
CTX = RenderContext.from_rules(RULES)
PATIENT = PatientBinding(patient_id="HO2009003", location="HO 3 West ICU", patient_name="Hon^Amy")
START = calendar.timegm((2012, 1, 9, 23, 54, 17))  # 20120109175417-0600
END = START + 9


def sample_text(name: str) -> str:
    return (DATA / name).read_bytes().decode().rstrip("\r")


def sample(name: str) -> hl7.Message:
    return hl7.parse(sample_text(name))


def render(phase: AlarmPhase, state: AlarmState, t: float, control_id: str) -> hl7.Message:
    alarm = sample_alarm(RULES, device_id="PUMP-01", condition="196940^MDC_EVT_FLUID_LINE_OCCL", text="Occlusion",
                         priority=AlarmPriority.HIGH, state=state, phase=phase, source_metric=None, value=None,
                         t=t, patient=PATIENT, alarm_id="P6013_4")
    text = build_oru_r40(alarm, CTX, control_id=control_id, message_time=t)
    return validate_oru_r40(text)


@pytest.fixture(scope="module")
def start():
    return render(AlarmPhase.START, AlarmState.ACTIVE, START, "6346172845752460251")


@pytest.fixture(scope="module")
def end():
    return render(AlarmPhase.END, AlarmState.INACTIVE, END, "6346172846620706282")


def obx(message: hl7.Message, set_id: int) -> hl7.Segment:
    return [s for s in message if str(s[0]) == "OBX"][set_id - 1]


@pytest.mark.parametrize(("name", "ours"), [("ihe_pcd04_bbraun_pump_occlusion_alarm_start.hl7", "start"),
                                            ("ihe_pcd04_bbraun_pump_occlusion_alarm_end.hl7", "end")])
def test_header_and_order_match_the_example(name, ours, request):
    mine, theirs = request.getfixturevalue(ours), sample(name)
    assert [str(s[0]) for s in mine][:4] == [str(s[0]) for s in theirs][:4] == ["MSH", "PID", "PV1", "OBR"]
    for index in (9, 11, 12, 15, 16):
        assert str(mine.segment("MSH")(index)) == str(theirs.segment("MSH")(index)), f"MSH-{index}"
    assert str(mine.segment("MSH")(21)(1)(1)) == str(theirs.segment("MSH")(21)(1)(1)) == "IHE_PCD_ACM_001"
    assert str(mine.segment("PID")(3)(1)(1)) == str(theirs.segment("PID")(3)(1)(1)) == "HO2009003"
    assert str(mine.segment("PID")(5)) == str(theirs.segment("PID")(5))
    assert str(mine.segment("PV1")(2)) == str(theirs.segment("PV1")(2)) == "I"
    assert str(mine.segment("OBR")(4)) == str(theirs.segment("OBR")(4)) == "196616^MDC_EVT_ALARM^MDC"
    assert str(mine.segment("OBR")(3)(1)(1)) == str(theirs.segment("OBR")(3)(1)(1)).split("^")[0] == "P6013_4"
    assert str(mine.segment("OBR")(29)).startswith("^P6013_4&") and str(theirs.segment("OBR")(29)).startswith("^")


@pytest.mark.parametrize(("name", "ours"), [("ihe_pcd04_bbraun_pump_occlusion_alarm_start.hl7", "start"),
                                            ("ihe_pcd04_bbraun_pump_occlusion_alarm_end.hl7", "end")])
def test_event_and_source_facets_match_the_example(name, ours, request):
    mine, theirs = request.getfixturevalue(ours), sample(name)
    for set_id in (1, 2):
        for index in (2, 3, 4, 11):
            assert str(obx(mine, set_id)(index)) == str(obx(theirs, set_id)(index)), f"OBX {set_id}-{index}"
    ident_mine, ident_theirs = obx(mine, 1), obx(theirs, 1)
    assert str(ident_mine(5)).split("^")[:3] == str(ident_theirs(5)).split("^")[:3]
    assert str(ident_mine(5)).split("^")[8] == str(ident_theirs(5)).split("^")[8] == "Occlusion"
    assert "ST" in str(ident_mine(8)).split("~") and str(ident_theirs(8)) == "ST"  # technical alarm
    assert str(obx(mine, 2)(5)) == str(obx(theirs, 2)(5)) == "69985^MDC_DEV_PUMP_INFUS_MDS^MDC"


def test_phase_state_and_inactivation_facets_match_the_start_example(start):
    theirs = sample("ihe_pcd04_bbraun_pump_occlusion_alarm_start.hl7")
    for set_id in (3, 4, 5):
        mine_row, their_row = obx(start, set_id), obx(theirs, set_id)
        assert str(mine_row(2)) == str(their_row(2)) == "ST"
        assert str(mine_row(3)(1)(1)) == str(their_row(3)(1)(1))  # 68481 / 68482 / 68483
        assert str(mine_row(4)) == str(their_row(4))  # 1.0.0.0.3 ...
        assert str(mine_row(5)) == str(their_row(5))  # start / active / enabled


def test_end_reports_its_phase_and_state(end):
    rows = {str(s(3)(1)(2)): str(s(5)) for s in end if str(s[0]) == "OBX"}
    assert rows["MDC_ATTR_EVENT_PHASE"] == "end"
    assert rows["MDC_ATTR_ALARM_STATE"] == "inactive"
    assert rows["MDC_ATTR_ALARM_PRIORITY"] == "PH"
    assert rows["MDC_ATTR_ALERT_TYPE"] == "ST"


def test_same_alarm_id_and_distinct_indications_across_phases(start, end):
    assert str(start.segment("OBR")(3)) == str(end.segment("OBR")(3))
    assert str(start.segment("OBR")(29)) == str(end.segment("OBR")(29))
    assert str(start.segment("OBR")(2)) != str(end.segment("OBR")(2))


def test_the_validator_accepts_the_end_example_and_finds_the_start_examples_quirk():
    validate_oru_r40(sample_text("ihe_pcd04_bbraun_pump_occlusion_alarm_end.hl7"))
    with pytest.raises(InvalidOutputError, match="OBX.OBX_11"):
        validate_oru_r40(sample_text("ihe_pcd04_bbraun_pump_occlusion_alarm_start.hl7"))
