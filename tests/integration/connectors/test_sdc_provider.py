"""SDC connector against sdc11073's own provider on loopback (no multicast: discovery is a no-op)."""

from __future__ import annotations

import asyncio

import pytest
from devsim_rules import Collector, build_rules, device_type

from connectors.sdc import SdcConnector
from connectors.simulators.sdc_provider import SdcTestProvider
from hub.errors import RuleError
from hub.events import AlarmPhase, AlarmPriority, AlarmState, DataClass, EventKind, Quality

SHARED_MDIB = "../shared/data/sdc/sdc11073_reference_mdib.xml"


@pytest.fixture(scope="module")
def provider():
    p = SdcTestProvider.start()
    p.set_numeric("spo2", 97)
    p.set_numeric("hr", 72)
    yield p
    p.stop()


def sdc_rules(xaddr: str):
    return build_rules([device_type("sdc-monitor", "sdc", "push", ["vital", "alarm"], check_interval_s=0.2)],
                       [{"id": "SDC-01", "type": "sdc-monitor", "location": "ICU1-BED05",
                         "connector": {"xaddr": xaddr}}])


def by_code(events, code: str):
    return [e for e in events if e.code_sent == code]


def test_metric_and_alert_reports_become_events(provider):
    async def scenario():
        rules = sdc_rules(provider.xaddr)
        conn = SdcConnector.from_rules(rules, devices=rules.devices)
        out = Collector()
        await conn.start(out.emit)
        try:
            # the initial MDIB states arrive first (baseline), then the reports of each change
            assert await out.wait_for(lambda ev: by_code(ev, "150456") and by_code(ev, "147842"))
            await asyncio.to_thread(provider.set_numeric, "spo2", 88)
            await asyncio.to_thread(provider.set_numeric, "nibp.sys", 121)
            await asyncio.to_thread(provider.set_numeric, "nibp.dia", 79, "Qst")
            await asyncio.to_thread(provider.set_alert, "ac.spo2.low", True)
            assert await out.wait_for(lambda ev: any(e.value_sent == 88.0 for e in ev)
                                      and by_code(ev, "150022") and any(e.kind is EventKind.ALARM for e in ev))
            await asyncio.to_thread(provider.set_alert, "ac.spo2.low", False)
            assert await out.wait_for(lambda ev: any(e.alarm and e.alarm.phase is AlarmPhase.END for e in ev))
            return list(out.events), conn.health()
        finally:
            await conn.stop()

    events, health = asyncio.run(scenario())
    spo2 = next(e for e in by_code(events, "150456") if e.value_sent == 88.0)
    assert spo2.kind is EventKind.NUMERIC and spo2.mdc_code == 150456 and spo2.unit_sent == "262688"
    assert spo2.code_system_sent == "MDC" and spo2.data_class is DataClass.VITAL and spo2.location == "ICU1-BED05"
    assert spo2.provenance.raw_ref == "spo2" and spo2.stream == "SDC-01/sdc" and not spo2.quality
    assert abs(spo2.device_time - spo2.received_time) < 60  # DeterminationTime from the provider
    assert by_code(events, "150021")[-1].value_sent == 121.0 and by_code(events, "150021")[-1].unit_sent == "266016"
    assert Quality.QUESTIONABLE in by_code(events, "150022")[-1].quality
    start, end = [e for e in events if e.kind is EventKind.ALARM]
    assert start.alarm.phase is AlarmPhase.START and start.alarm.state is AlarmState.ACTIVE
    assert start.alarm.priority is AlarmPriority.HIGH and start.alarm.condition == "196650"
    assert start.alarm.text == "SpO2 low" and start.alarm.source_metric == "spo2"
    assert end.alarm.state is AlarmState.INACTIVE and end.alarm.alarm_id == start.alarm.alarm_id
    assert start.data_class is DataClass.ALARM
    seqs = [e.seq for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert health["status"] == "up" and health["devices"][0]["metric"] >= 4


def test_shared_reference_mdib_maps_handles_and_codes():
    provider = SdcTestProvider.start(SHARED_MDIB)
    try:
        async def scenario():
            rules = sdc_rules(provider.xaddr)
            conn = SdcConnector.from_rules(rules, devices=rules.devices)
            out = Collector()
            await conn.start(out.emit)
            try:
                await out.wait_for(lambda ev: conn.devices[0].connected)
                await asyncio.to_thread(provider.set_numeric, "numeric.ch1.vmd0", 42)
                assert await out.wait_for(lambda ev: any(e.value_sent == 42.0 for e in ev))
                return list(out.events)
            finally:
                await conn.stop()

        events = asyncio.run(scenario())
    finally:
        provider.stop()
    event = next(e for e in events if e.value_sent == 42.0)
    assert event.code_sent == "196074" and event.mdc_code == 196074 and event.provenance.raw_ref == "numeric.ch1.vmd0"


def test_unreachable_provider_is_reported_and_retried():
    async def scenario():
        rules = build_rules([device_type("sdc-monitor", "sdc", "push", ["vital"], reconnect_initial_s=0.1,
                                         reconnect_max_s=0.2, socket_timeout_s=1)],
                            [{"id": "SDC-02", "type": "sdc-monitor", "connector": {"xaddr": "http://127.0.0.1:9/x"}}])
        conn = SdcConnector.from_rules(rules, devices=rules.devices)
        out = Collector()
        await conn.start(out.emit)
        try:
            assert await out.wait_for(lambda ev: len(conn.errors) >= 2)
            return list(conn.errors), conn.health()
        finally:
            await conn.stop()

    errors, health = asyncio.run(scenario())
    assert all(device == "SDC-02" for device, _ in errors)
    assert any("Connection refused" in reason or "ConnectionRefused" in reason for _, reason in errors)
    assert health["status"] == "down"


def test_settings_need_an_address():
    rules = build_rules([device_type("sdc-monitor", "sdc", "push", ["vital"])],
                        [{"id": "SDC-03", "type": "sdc-monitor"}])
    with pytest.raises(RuleError, match=r"SDC-03.*set xaddr, or discovery: true with an epr"):
        SdcConnector.from_rules(rules, devices=rules.devices)


def test_changes_while_the_connector_was_stopped_arrive_with_the_next_baseline(provider):
    async def scenario():
        rules = sdc_rules(provider.xaddr)
        out = Collector()
        first = SdcConnector.from_rules(rules, devices=rules.devices)
        await first.start(out.emit)
        assert await out.wait_for(lambda ev: first.devices[0].connected)
        await first.stop()
        await asyncio.to_thread(provider.set_numeric, "hr", 131)  # nobody subscribed: no report reaches us
        before = len(out.events)
        second = SdcConnector.from_rules(rules, devices=rules.devices)
        await second.start(out.emit)
        assert await out.wait_for(lambda ev: any(e.code_sent == "147842" and e.value_sent == 131.0 for e in ev))
        await second.stop()
        return out.events[:before], out.events[before:]

    old, new = asyncio.run(scenario())
    assert not any(e.value_sent == 131.0 for e in old)
    assert [e.value_sent for e in new if e.code_sent == "147842"] == [131.0]
    assert min(e.seq for e in new) > max(e.seq for e in old)  # the stream continues above
