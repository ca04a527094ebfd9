"""Pure pieces of the hybrid and SDC connectors: baseline reconciliation, event-line meta, SDC mapping."""

from __future__ import annotations

import pytest

from connectors.hybrid import baseline_diff, split_meta
from connectors.poll_records import SeqCounter
from connectors.sdc import SdcDeviceState, SdcReading, SdcSettings, event_from_reading
from hub.errors import DecodeError
from hub.events import AlarmPhase, AlarmPriority, AlarmState, DataClass, Device, EventKind, Quality


def test_baseline_diff_corrects_only_what_events_missed():
    known = {"PEEP": ("5", 3), "FIO2": ("40", 9), "RR": ("14", 2)}
    snapshot = {"PEEP": "8", "FIO2": "30", "RR": "14", "VT": "450"}
    corrections, initial = baseline_diff(known, snapshot, snapshot_seq=7)
    assert corrections == {"PEEP": "8"}  # FIO2 was set by event 9, newer than the snapshot (seq 7)
    assert initial == {"VT": "450"}


def test_split_meta_and_bad_seq():
    assert split_meta({"TYPE": "EVENT", "SEQ": "4", "PEEP": "6"}, "x") == ("EVENT", 4, {"PEEP": "6"})
    with pytest.raises(DecodeError, match="SEQ 'four' is not an integer"):
        split_meta({"TYPE": "EVENT", "SEQ": "four"}, "event line")


def sdc_state() -> SdcDeviceState:
    return SdcDeviceState(Device(id="SDC-01", type="sdc-monitor"), "monitor", "BED-1", DataClass.VITAL,
                          SeqCounter(0), {})


def numeric(value, validity="Vld", code="150456\u202c", system=None):
    return SdcReading("spo2", "numeric", code.strip("\u202c"), system, "SpO2", "262688", value, validity, 100.0)


@pytest.mark.parametrize("validity, flag", [("Vld", None), ("Qst", Quality.QUESTIONABLE),
                                            ("Calib", Quality.CALIBRATING), ("Inv", Quality.INVALID)])
def test_sdc_numeric_validity_becomes_quality(validity, flag):
    event = event_from_reading(sdc_state(), numeric(97.0, validity), 101.0)
    assert event.kind is EventKind.NUMERIC and event.mdc_code == 150456 and event.code_system_sent == "MDC"
    assert event.device_time == 100.0 and event.received_time == 101.0 and event.unit_sent == "262688"
    assert event.quality == (frozenset({flag}) if flag else frozenset())


def test_sdc_value_less_state_is_a_missing_marker_and_vendor_codes_keep_their_system():
    event = event_from_reading(sdc_state(), numeric(None), 101.0)
    assert event.value_sent is None and event.quality == {Quality.MISSING}
    vendor = event_from_reading(sdc_state(), numeric(5.0, code="X-1", system="urn:oid:1.3.6.1.4.1.3592"), 101.0)
    assert vendor.mdc_code is None and vendor.code_system_sent == "urn:oid:1.3.6.1.4.1.3592"


def test_sdc_alert_presence_gives_start_update_end():
    st = sdc_state()

    def alert(presence, activation="On", at=200.0):
        return SdcReading("ac.spo2.low", "alert", "196650", None, "SpO2 low", None, None, None, at, priority="Me",
                          presence=presence, activation=activation, source="spo2")

    assert event_from_reading(st, alert(False), 1.0) is None  # absent and was absent
    start = event_from_reading(st, alert(True), 1.0)
    paused = event_from_reading(st, alert(True, "Psd", 201.0), 1.0)
    end = event_from_reading(st, alert(False, at=202.0), 1.0)
    assert [e.alarm.phase for e in (start, paused, end)] == [AlarmPhase.START, AlarmPhase.UPDATE, AlarmPhase.END]
    assert [e.alarm.state for e in (start, paused, end)] == [AlarmState.ACTIVE, AlarmState.ACKNOWLEDGED,
                                                            AlarmState.INACTIVE]
    assert start.alarm.priority is AlarmPriority.MEDIUM and start.data_class is DataClass.ALARM
    assert len({e.alarm.alarm_id for e in (start, paused, end)}) == 1
    assert start.seq < paused.seq < end.seq


def test_sdc_settings_errors():
    with pytest.raises(ValueError, match="set xaddr, or discovery: true with an epr"):
        SdcSettings()
    with pytest.raises(ValueError, match="must start with http"):
        SdcSettings(xaddr="127.0.0.1:6464")
    assert SdcSettings(discovery=True, epr="urn:uuid:1").xaddr is None
