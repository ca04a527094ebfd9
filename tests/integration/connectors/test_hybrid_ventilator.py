"""Hybrid connector against the ventilator simulator: 20 % of events dropped, baseline polls
close every gap; silent event channel -> polling fallback -> back to events."""

from __future__ import annotations

import asyncio
import random

from devsim_rules import Collector, build_rules, device_type

from connectors.hybrid import HybridConnector
from connectors.simulators.ventilator import VentilatorSimulator
from hub.events import EventKind, Quality

FIELDS = {"PEEP": {"code": "151976", "system": "MDC", "mdc_code": 151976, "unit": "MDC_DIM_CM_H2O"},
          "FIO2": {"code": "152196", "system": "MDC", "mdc_code": 152196, "unit": "MDC_DIM_PERCENT"},
          "RR": {"code": "151586", "system": "MDC", "mdc_code": 151586, "unit": "MDC_DIM_RESP_PER_MIN",
                 "data_class": "vital"},
          "VT": {"code": "151868", "system": "MDC", "mdc_code": 151868, "unit": "MDC_DIM_MILLI_L"},
          "ALARM": {"kind": "alarm"}}


def vent_rules(port: int, **connector):
    settings = {"fields": FIELDS, "baseline_interval_s": 0.3, "silence_fallback_s": 5.0, "poll_interval_s": 0.1,
                "timeout_s": 1.0, "reconnect_initial_s": 0.1, **connector}
    return build_rules([device_type("ventilator", "hybrid-tcp", "hybrid", ["vital", "setting", "alarm"], **settings)],
                       [{"id": "VENT-03", "type": "ventilator", "location": "ICU1-BED03", "connector": {"port": port}}])


def emitted_state(events) -> dict[str, str]:
    """The device state as the hub sees it: the last value emitted per key (alarms: active condition)."""
    state: dict[str, str] = {}
    for e in sorted(events, key=lambda e: e.seq):
        key = e.provenance.raw_ref
        if e.kind is EventKind.ALARM:
            state[key] = e.alarm.condition if e.alarm.phase.value != "end" else "NONE"
        else:
            state[key] = e.text if e.value_sent is None or isinstance(e.value_sent, str) else f"{e.value_sent:g}"
    return state


def events_only_state(events) -> dict[str, str]:
    return emitted_state([e for e in events if Quality.CORRECTIVE not in e.quality])


def test_dropped_events_are_corrected_at_each_baseline_poll():
    async def scenario():
        sim = VentilatorSimulator(drop_ratio=0.2, seed=11, heartbeat_s=0.1)
        await sim.start()
        conn = HybridConnector.from_rules(vent_rules(sim.port), devices=vent_rules(sim.port).devices)
        device = conn.devices[0]
        out = Collector()
        await conn.start(out.emit)
        rng = random.Random(5)
        checks = []
        try:
            assert await out.wait_for(lambda ev: device.counts["baselines"] >= 1)
            for _ in range(6):
                for _ in range(12):
                    key = rng.choice(["PEEP", "FIO2", "RR", "VT", "ALARM"])
                    value = (rng.choice(["NONE", "HIGH_PRESSURE", "APNEA"]) if key == "ALARM"
                             else str(rng.randint(1, 60)))
                    sim.set_value(key, value)
                    await asyncio.sleep(0.005)
                truth = sim.true_state()
                done = device.counts["baselines"]
                # a baseline that started after the last change has completed
                assert await out.wait_for(lambda ev, done=done: device.counts["baselines"] >= done + 2)
                checks.append((truth, emitted_state(out.events), events_only_state(out.events)))
        finally:
            await conn.stop()
            await sim.stop()
        return checks, sim, out.events, conn.health()

    checks, sim, events, health = asyncio.run(scenario())
    assert sim.dropped, "the simulator dropped no events: the test would prove nothing"
    assert any(truth != events_only for truth, _, events_only in checks), "events alone never diverged"
    for truth, seen, _ in checks:
        assert seen == truth
    corrective = [e for e in events if Quality.CORRECTIVE in e.quality]
    assert corrective and health["devices"][0]["corrections"] == len(corrective)
    assert health["devices"][0]["gaps"] >= 1 and health["devices"][0]["mode"] == "events"
    seqs = [e.seq for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def test_silent_event_channel_falls_back_to_polling_and_returns():
    async def scenario():
        sim = VentilatorSimulator(heartbeat_s=0.05)
        await sim.start()
        rules = vent_rules(sim.port, silence_fallback_s=0.4, baseline_interval_s=30.0)
        conn = HybridConnector.from_rules(rules, devices=rules.devices)
        device = conn.devices[0]
        out = Collector()
        await conn.start(out.emit)
        try:
            assert await out.wait_for(lambda ev: device.counts["baselines"] >= 1)
            sim.events_enabled = False
            assert await out.wait_for(lambda ev: device.mode == "polling")
            assert conn.health()["status"] == "degraded"
            sim.set_value("PEEP", "12")  # not sent as an event: only polling can see it
            assert await out.wait_for(lambda ev: any(e.value_sent == 12.0 for e in ev))
            polls_while_silent = device.counts["baselines"]
            sim.events_enabled = True
            assert await out.wait_for(lambda ev: device.mode == "events")
            sim.set_value("FIO2", "55")
            assert await out.wait_for(lambda ev: any(e.value_sent == 55.0 for e in ev))
            return list(out.events), device.counts, polls_while_silent
        finally:
            await conn.stop()
            await sim.stop()

    events, counts, polls = asyncio.run(scenario())
    peep = next(e for e in events if e.value_sent == 12.0)
    assert Quality.CORRECTIVE not in peep.quality  # while polling, polled values are the data
    fio2 = next(e for e in events if e.value_sent == 55.0)
    assert Quality.CORRECTIVE not in fio2.quality and fio2.device_time > 0
    assert counts["fallbacks"] == 1 and polls >= 2


def test_garbled_event_line_is_reported_and_repaired_by_the_baseline():
    async def scenario():
        sim = VentilatorSimulator(heartbeat_s=0.1)
        await sim.start()
        rules = vent_rules(sim.port, baseline_interval_s=30.0)
        errors = []
        conn = HybridConnector.from_rules(rules, devices=rules.devices, on_error=lambda d, e: errors.append(e))
        device = conn.devices[0]
        out = Collector()
        await conn.start(out.emit)
        try:
            assert await out.wait_for(lambda ev: device.counts["baselines"] >= 1 and device.channel_up)
            sim.state["VT"] = "520"
            sim.seq += 1
            sim._push(f"TYPE=EVENT;SEQ={sim.seq};%%garbage%%")
            assert await out.wait_for(lambda ev: any(e.value_sent == 520.0 for e in ev))
            sim.set_value("RR", "18")
            assert await out.wait_for(lambda ev: any(e.value_sent == 18.0 for e in ev))
            return errors, list(out.events)
        finally:
            await conn.stop()
            await sim.stop()

    errors, events = asyncio.run(scenario())
    assert any("is not KEY=VALUE" in str(e) for e in errors)
    vt = next(e for e in events if e.value_sent == 520.0)
    assert Quality.CORRECTIVE in vt.quality


def test_changes_while_the_connector_was_stopped_are_caught_by_the_first_baseline():
    async def scenario():
        sim = VentilatorSimulator(heartbeat_s=0.1)
        await sim.start()
        rules = vent_rules(sim.port, baseline_interval_s=30.0)
        out = Collector()
        first = HybridConnector.from_rules(rules, devices=rules.devices)
        await first.start(out.emit)
        assert await out.wait_for(lambda ev: first.devices[0].counts["baselines"] >= 1)
        await first.stop()
        sim.set_value("PEEP", "9")  # nobody listens: the event is lost
        sim.set_value("ALARM", "APNEA")
        second = HybridConnector.from_rules(rules, devices=rules.devices)
        await second.start(out.emit)
        assert await out.wait_for(lambda ev: second.devices[0].counts["baselines"] >= 1)
        await second.stop()
        await sim.stop()
        return sim.true_state(), out.events

    truth, events = asyncio.run(scenario())
    assert emitted_state(events) == truth
