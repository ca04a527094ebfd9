"""MQTT payload decoding: canonical events, batches, gateway summaries, and specific errors."""

from __future__ import annotations

import json

import pytest

from connectors.mqtt import decode_payload, reason_label_of
from hub.errors import DecodeError
from hub.events import DataClass, Device, Event, EventKind, Provenance


@pytest.fixture
def rules(rules_factory):
    oxi = {"name": "pulse-oximeter", "protocol": "mqtt", "sync_mode": "push", "criticality": "high",
           "data_classes": ["vital", "alarm"], "source": "pulse-oximeter"}
    return rules_factory([oxi], [{"id": "OXI-02", "type": "pulse-oximeter", "location": "ICU1-BED02",
                                  "gateway": "GW-1"}])


def canonical(i: int = 1) -> Event:
    return Event(event_id=f"e{i}", kind=EventKind.NUMERIC, data_class=DataClass.VITAL,
                 device=Device(id="OXI-02", type="pulse-oximeter"), stream="OXI-02/spo2", seq=i,
                 device_time=100.0 + i, received_time=101.0 + i, code_sent="SPO2", value_sent=97.0,
                 provenance=Provenance(connector="edge", gateway="GW-1"))


def summary(**changes) -> bytes:
    data = {"device": "OXI-02", "gateway": "GW-1", "seq": 17, "time": 1763700000.5,
            "values": [{"code": "SPO2", "system": "ACME", "value": 97, "unit": "%"},
                       {"code": "STATUS", "value": "probe-ok"}],
            "alarms": [{"condition": "SPO2_LOW", "priority": "high", "state": "active"}]}
    data.update(changes)
    return json.dumps(data).encode()


def test_canonical_event_round_trips(rules):
    event = canonical()
    assert decode_payload(event.to_json(), rules, 5.0) == [event]


def test_batch_of_canonical_events(rules):
    payload = json.dumps({"events": [json.loads(canonical(i).to_json()) for i in (1, 2)]}).encode()
    assert [e.event_id for e in decode_payload(payload, rules, 5.0)] == ["e1", "e2"]


def test_gateway_summary_streams_per_channel_and_stable_ids(rules):
    events = decode_payload(summary(), rules, 5.0)
    spo2, status, alarm = events
    assert spo2.stream == "OXI-02/SPO2" and spo2.seq == 17 and spo2.value_sent == 97.0 and spo2.unit_sent == "%"
    assert spo2.data_class is DataClass.VITAL and spo2.location == "ICU1-BED02" and spo2.source == "pulse-oximeter"
    assert spo2.received_time == 5.0 and spo2.device_time == 1763700000.5
    assert status.kind is EventKind.TEXT and status.text == "probe-ok"
    assert alarm.kind is EventKind.ALARM and alarm.alarm.condition == "SPO2_LOW" and alarm.stream == "OXI-02/alarms"
    again = decode_payload(summary(), rules, 9.0)  # a redelivery keeps ids, so the hub can dedupe
    assert [e.event_id for e in again] == [e.event_id for e in events]


@pytest.mark.parametrize("payload, field, needle, label", [
    (b"{not json", None, "not JSON", "not-json"),
    (b"\xff\xfe", None, "not UTF-8", "not-utf8"),
    (b"[1, 2]", None, "JSON list", "unknown-shape"),
    (b'{"hello": 1}', None, "expected a canonical event", "unknown-shape"),
    (b'{"event_id": "x", "kind": "numeric"}', "data_class", "not a valid canonical event", "invalid-event"),
    (summary(device="OXI-99"), "device", "unknown device 'OXI-99'", "unknown-device"),
    (summary(seq=-1), "seq", "non-negative integer", "invalid-summary"),
    (summary(time="noon"), "time", "epoch seconds", "invalid-summary"),
    (summary(values=[{"code": "SPO2", "value": [1]}], alarms=[]), "values[0].value", "number or a string",
     "invalid-summary"),
    (summary(alarms=[{"condition": "X", "priority": "urgent", "state": "active"}]), "alarms[0].priority", "Input should be",
     "invalid-summary"),
])
def test_bad_payloads_name_the_problem(rules, payload, field, needle, label):
    with pytest.raises(DecodeError, match=needle) as info:
        decode_payload(payload, rules, 5.0)
    assert info.value.field == field
    assert reason_label_of(info.value) == label
