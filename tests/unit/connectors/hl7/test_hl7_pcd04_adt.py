"""PCD-04 alarms and ADT associations."""

from __future__ import annotations

import pytest

from connectors.hl7.errors import Hl7Error
from hub.events import AlarmPhase, AlarmPriority, AlarmState, DataClass, EventKind

R40 = "MSH|^~\\&|PUMP^0012210000000000^EUI-64|VENDOR|||20260101120000-0600||ORU^R40^ORU_R40|{cid}|P|2.6"
ALARM_OBR = "OBR|1|{placer}^PUMP|ALM-77^PUMP|196616^MDC_EVT_ALARM^MDC|||20260101120000-0600"


def alarm(phase="start", state="active", flags="PH~SP", extra=(), cid="A1", placer="1") -> str:
    rows = [
        R40.format(cid=cid),
        "PV1||I|ICU1^^BED03",
        ALARM_OBR.format(placer=placer),
        "OBX|1||69985^MDC_DEV_PUMP_INFUS_MDS^MDC|1.0.0.0|||||||X",
        f"OBX|2|CWE|196616^MDC_EVT_ALARM^MDC|1.1.1.1.1|196940^MDC_EVT_FLUID_LINE_OCCL^MDC|||{flags}|||F",
        "OBX|3|NM|157784^MDC_FLOW_FLUID_PUMP^MDC|1.1.1.1.2|0|265266^MDC_DIM_MILLI_L_PER_HR^MDC||||F",
    ]
    if phase is not None:
        rows.append(f"OBX|4|ST|68481^MDC_ATTR_EVENT_PHASE^MDC|1.1.1.1.3|{phase}||||||F")
    if state is not None:
        rows.append(f"OBX|5|ST|68482^MDC_ATTR_ALARM_STATE^MDC|1.1.1.1.4|{state}||||||F")
    return "\r".join([*rows, *extra]) + "\r"


def test_alarm_start(decode):
    (event,) = decode(alarm())
    assert event.kind is EventKind.ALARM and event.data_class is DataClass.ALARM
    assert event.device.id == "PUMP-07" and event.location == "ICU1-BED03"
    a = event.alarm
    assert (a.condition, a.priority, a.phase, a.state) == (
        "MDC_EVT_FLUID_LINE_OCCL", AlarmPriority.HIGH, AlarmPhase.START, AlarmState.ACTIVE)
    assert a.alarm_id == "ALM-77" and a.source_metric == "MDC_FLOW_FLUID_PUMP"
    assert event.device_time == 1_767_290_400.0  # OBR-7 at -0600
    assert event.stream == "PUMP-07/alarm/MDC_EVT_FLUID_LINE_OCCL"


def test_same_alarm_instance_across_start_and_end(decode):
    (start,) = decode(alarm(cid="A1", placer="1"))
    (end,) = decode(alarm(phase="end", state="inactive", cid="A2", placer="2"))
    assert start.alarm.alarm_id == end.alarm.alarm_id
    assert end.alarm.phase is AlarmPhase.END and end.alarm.state is AlarmState.INACTIVE
    assert start.event_id != end.event_id
    (again,) = decode(alarm(cid="A9", placer="9"))
    assert again.event_id == start.event_id  # redelivery is recognisable


def test_missing_phase_and_state_read_as_an_update_of_an_active_alarm(decode):
    (event,) = decode(alarm(phase=None, state=None, flags="ST"))
    assert event.alarm.phase is AlarmPhase.UPDATE and event.alarm.state is AlarmState.ACTIVE
    assert event.alarm.priority is AlarmPriority.MEDIUM  # the rules' default_alarm_priority
    (low,) = decode(alarm(flags="ST"), default_alarm_priority=AlarmPriority.LOW)
    assert low.alarm.priority is AlarmPriority.LOW


def test_acknowledged_and_explicit_priority_facet(decode):
    extra = ["OBX|6|ST|68483^MDC_ATTR_ALARM_INACTIVATION_STATE^MDC|1.1.1.1.5|alert-acknowledged||||||F",
             "OBX|7|ST|68484^MDC_ATTR_ALARM_PRIORITY^MDC|1.1.1.1.6|PL||||||F"]
    (event,) = decode(alarm(extra=extra))
    assert event.alarm.state is AlarmState.ACKNOWLEDGED and event.alarm.priority is AlarmPriority.LOW


def test_unknown_phase_is_named(decode):
    with pytest.raises(Hl7Error) as err:
        decode(alarm(phase="sideways"))
    assert err.value.code == "103" and "event phase 'sideways'" in err.value.reason and "OBX[4]-5" in err.value.reason


def test_alarm_without_identification_row(decode):
    text = alarm().replace("|1.1.1.1.1|", "|1.1.1.9.1|")
    with pytest.raises(Hl7Error, match=r"alarm identification row 1\.1\.1\.1\.1"):
        decode(text)


ADT = "MSH|^~\\&|EPIC|HOSP|DEVSYNC|HOSP|20260102080000+0000||ADT^{trigger}^ADT_A01|{cid}|P|2.5.1"


def adt(trigger, pv1="PV1||I|ICU1^^BED01^HOSP||||||||||||||||V123", evn="EVN|{trigger}|20260102075500", cid="M1",
        pid="PID|||MRN42^^^HOSP^MR~999^^^SSA^SS||Doe^Jane^Q"):
    rows = [ADT.format(trigger=trigger, cid=cid), evn.format(trigger=trigger), pid, pv1]
    return "\r".join(r for r in rows if r) + "\r"


@pytest.mark.parametrize("trigger,action", [("A01", "bind"), ("A04", "bind"), ("A03", "unbind"), ("A08", "update"),
                                            ("A11", "cancel"), ("A13", "cancel")])
def test_adt_actions(decode, trigger, action):
    (event,) = decode(adt(trigger))
    assert event.kind is EventKind.ASSOCIATION and event.data_class is DataClass.ASSOCIATION
    a = event.association
    assert (a.action, a.location, a.patient_id, a.encounter_id) == (action, "ICU1-BED01", "MRN42", "V123")
    assert a.patient_name == "Doe^Jane^Q" and a.source_message == f"ADT^{trigger}"
    assert a.valid_from == 1_767_340_500.0  # EVN-2
    assert event.patient.patient_id == "MRN42" and event.patient.location == "ICU1-BED01"
    assert event.stream == "adt/ICU1-BED01" and "MRN42" not in event.stream


def test_transfer_unbinds_the_prior_bed_and_binds_the_new_one(decode):
    unbind, bind = decode(adt("A02", pv1="PV1||I|ICU1^^BED05|||ICU1^^BED01"))
    assert (unbind.association.action, unbind.location) == ("unbind", "ICU1-BED01")
    assert (bind.association.action, bind.location) == ("bind", "ICU1-BED05")
    assert unbind.event_id != bind.event_id


def test_valid_from_prefers_evn6_then_falls_back_to_msh7(decode):
    (event,) = decode(adt("A01", evn="EVN|A01|20260102075500||||20260102070000"))
    assert event.association.valid_from == 1_767_337_200.0
    (event,) = decode(adt("A01", evn="EVN|A01"))
    assert event.association.valid_from == 1_767_340_800.0


def test_redelivered_adt_keeps_its_id(decode):
    assert decode(adt("A01"))[0].event_id == decode(adt("A01"))[0].event_id
    assert decode(adt("A01"))[0].event_id != decode(adt("A01", cid="M2"))[0].event_id


@pytest.mark.parametrize(
    "kwargs,code,words",
    [
        ({"pv1": "PV1||I"}, "101", "PV1-3 (assigned patient location) is required"),
        ({"pid": "PID|||"}, "101", "PID-3 (patient identifier list) is required"),
        ({"evn": ""}, "100", "ADT^A01 has no EVN segment"),
        ({"pv1": ""}, "100", "ADT^A01 has no PV1 segment"),
        ({"evn": "EVN|A01|2026-01-02"}, "102", "EVN-2"),
    ],
)
def test_adt_errors(decode, kwargs, code, words):
    with pytest.raises(Hl7Error) as err:
        decode(adt("A01", **kwargs))
    assert err.value.code == code and words in err.value.reason


def test_unsupported_trigger_lists_what_is_supported(decode):
    with pytest.raises(Hl7Error) as err:
        decode(adt("A99"))
    assert err.value.code == "201" and err.value.ack_code == "AR"
    assert "unsupported message type ADT^A99 (supported: ADT^A01, ADT^A02" in err.value.reason
