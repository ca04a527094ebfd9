"""Every IHE PCD sample in ../shared/data/hl7v2 -> the events (or the rejection) it must give."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.hl7.common import DecodeContext
from connectors.hl7.decode import decode_frame
from connectors.hl7.errors import Hl7Error
from connectors.hl7.inventory import DeviceDirectory
from hub.events import AlarmPhase, AlarmState, DataClass, Event, EventKind
from hub.rules.load import load_rules
from hub.rules.models import RuleSet

SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "hl7v2"
RULES = Path(__file__).resolve().parents[2] / "rules"
RECEIVED = 1_800_000_000.0


def decode(name: str, rules: RuleSet | None = None):
    rules = rules or load_rules(RULES)
    return decode_frame((SAMPLES / name).read_bytes(), DecodeContext(DeviceDirectory(rules), RECEIVED))


def values(events):
    return {e.mdc_ref: e for e in events}


def test_the_sample_folder_is_all_covered():
    names = sorted(p.name for p in SAMPLES.glob("*.hl7"))
    assert names == sorted(ACCEPTED + list(REJECTED))


def test_philips_monitor():
    events = decode("ihe_pcd01_philips_physio_monitor.hl7")
    got = values(events)
    assert len(events) == 10
    assert [got[m].value_sent for m in ("MDC_PRESS_BLD_NONINV_SYS", "MDC_PRESS_BLD_NONINV_DIA",
                                         "MDC_PRESS_BLD_NONINV_MEAN")] == [117.0, 82.0, 90.0]
    assert {got[m].unit_sent for m in ("MDC_PRESS_BLD_NONINV_SYS", "MDC_PRESS_BLD_NONINV_DIA")} == {"MDC_DIM_MMHG"}
    hr = got["MDC_ECG_CARD_BEAT_RATE"]
    assert (hr.value_sent, hr.unit_sent, hr.mdc_code) == (80.0, "MDC_DIM_BEAT_PER_MIN", 147842)
    assert got["MDC_ECG_TIME_PD_QT_GL"].value_sent == 360.0 and got["MDC_ECG_TIME_PD_QTc"].value_sent == 416.0
    assert got["MDC_RESP_RATE"].value_sent == 30.0
    assert got["MDC_PULS_OXIM_SAT_O2"].value_sent == 99.0 and got["MDC_PULS_OXIM_PERF_REL"].value_sent == 3.9
    rhythm = got["MDC_ECG_STAT_RHY"]
    assert rhythm.kind is EventKind.TEXT and rhythm.text == "MDC_ECG_SINUS_RHY"
    # NIBP rows carry OBX-14 11:50:00; the ECG rows have none and inherit OBR-7 18:26:56 (MSH-7 offset +0000)
    assert got["MDC_PRESS_BLD_NONINV_SYS"].device_time == 1_421_927_400.0
    assert hr.device_time == 1_421_951_216.0 and hr.seq == 1_421_951_216_000
    # VMD rows name equipment 0600dc750001, not in the default inventory: kept, as an unknown device
    assert {e.device.id for e in events} == {"unknown-0600dc750001"}
    assert all(e.device.type == "unknown" and e.location is None and e.source is None for e in events)
    assert all(e.data_class is DataClass.VITAL and not e.quality for e in events)


def test_philips_monitor_known_by_equipment_id():
    rules = load_rules(RULES)
    devices = [d.model_copy(update={"connector": {"equipment_ids": ["0600dc750001"]}}) if d.id == "MON-01" else d
               for d in rules.devices]
    events = decode("ihe_pcd01_philips_physio_monitor.hl7", rules.model_copy(update={"devices": devices}))
    assert {(e.device.id, e.location, e.source) for e in events} == {("MON-01", "ICU1-BED01", "monitor")}
    assert all(e.stream.startswith("MON-01/MDC_") for e in events)


def test_acme_gateway_episodic_nibp():
    got = values(decode("ihe_pcd01_acme_gateway_episodic_nibp.hl7"))
    assert [got[m].value_sent for m in ("MDC_PRESS_BLD_NONINV_SYS", "MDC_PRESS_BLD_NONINV_DIA",
                                         "MDC_PRESS_BLD_NONINV_MEAN", "MDC_PULS_RATE_NON_INV")] == [111, 60, 80, 63]
    assert got["MDC_PRESS_BLD_NONINV_SYS"].unit_sent == "mm[Hg]"
    assert got["MDC_PULS_RATE_NON_INV"].unit_sent == "{beat}/min"
    assert {e.device_time for e in got.values()} == {1_306_990_722.0}  # 2011-06-02 04:58:42 +0000
    # OBX-18 names the device behind the gateway (not an EUI-64): unknown, never the gateway itself
    assert {e.device.id for e in got.values()} == {"unknown-080019FFFE3ED02D172.16.172.135"}


def test_bbraun_alarm_start_and_end():
    (start,) = decode("ihe_pcd04_bbraun_pump_occlusion_alarm_start.hl7")
    (end,) = decode("ihe_pcd04_bbraun_pump_occlusion_alarm_end.hl7")
    assert start.kind is EventKind.ALARM and start.alarm.condition == "MDC_EVT_FLUID_LINE_OCCL"
    assert start.alarm.text == "Occlusion" and start.alarm.alarm_id == "P6013_4"
    assert (start.alarm.phase, start.alarm.state) == (AlarmPhase.START, AlarmState.ACTIVE)
    assert start.alarm.source_metric == "MDC_DEV_PUMP_INFUS_MDS"
    assert start.device_time == 1_326_153_257.0  # 2012-01-09 17:54:17 -0600
    assert start.device.eui64 == "0012210000000000"
    # the TF's "end" example carries no phase/state rows: read as an update of the same alarm instance
    assert end.alarm.alarm_id == start.alarm.alarm_id and end.alarm.phase is AlarmPhase.UPDATE
    assert end.event_id != start.event_id


def test_pcd10_pump_event():
    events = decode("ihe_pcd10_pump_delivery_start_event.hl7")
    got = values(events)
    assert len(events) == 19  # every OBX with a value; containment rows only pass context down
    assert got["MDC_ATTR_EVT_COND"].kind is EventKind.DEVICE_STATUS
    assert got["MDC_ATTR_EVT_COND"].status == "197288" and got["MDC_ATTR_EVT_COND"].text == "MDC_EVT_PUMP_DELIV_START"
    rate = got["MDC_FLOW_FLUID_PUMP"]
    assert (rate.value_sent, rate.unit_sent, rate.data_class) == (15.4, "MDC_DIM_MILLI_L_PER_HR", DataClass.SETTING)
    assert got["MDC_RATE_DOSE"].value_sent == 5.0 and got["MDC_DRUG_NAME_LABEL"].text == "Dopamine"
    assert got["MDC_ATTR_PT_WEIGHT"].value_sent == 82.0


ACCEPTED = [
    "ihe_pcd01_philips_physio_monitor.hl7",
    "ihe_pcd01_acme_gateway_episodic_nibp.hl7",
    "ihe_pcd04_bbraun_pump_occlusion_alarm_start.hl7",
    "ihe_pcd04_bbraun_pump_occlusion_alarm_end.hl7",
    "ihe_pcd10_pump_delivery_start_event.hl7",
]
REJECTED = {
    "ihe_pcd03_infusion_order_rgv_o15.hl7": "RGV^O15",
    "ihe_pcd03_accept_ack_o15.hl7": "ACK^O15",
    "ihe_pcd03_app_ack_rrg_o16_error.hl7": "RRG^O16",
}


@pytest.mark.parametrize("name,type_name", sorted(REJECTED.items()))
def test_pcd03_messages_are_rejected_as_unsupported(name, type_name):
    with pytest.raises(Hl7Error) as err:
        decode(name)
    assert err.value.ack_code == "AR" and err.value.code == "200"
    assert f"unsupported message type {type_name} (supported: ADT^A01" in err.value.reason
    assert "ORU^R01, ORU^R40" in err.value.reason


@pytest.mark.parametrize("name", ACCEPTED)
def test_identity_is_stable_on_redelivery(name):
    first, second = decode(name), decode(name)
    assert [e.event_id for e in first] == [e.event_id for e in second]
    assert all(e.received_time == RECEIVED for e in first)


@pytest.mark.parametrize("name", ACCEPTED)
def test_fast_path_events_pass_full_validation(name):
    """The decoders build events without re-validating; pydantic must accept every one as is."""
    for event in decode(name):
        assert Event.model_validate(event.model_dump()) == event
        assert Event.from_json(event.to_json()) == event
