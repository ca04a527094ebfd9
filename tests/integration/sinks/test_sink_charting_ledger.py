"""Charting policy end to end: one-second vitals for ten simulated minutes through the HL7 sink.

Policy: one value per 300 s per metric, at once on a change beyond 15, and right after an alarm.
Input: heart rate 80 at t = 0..599 s, 100 from t = 100 s, one invalid reading at t = 50 s, an
alarm on heart rate at t = 450.5 s. Prescribed charted values: t = 0 (first), 100 (change of
20), 400 (300 s after 100), 451 (first value after the alarm). Everything else is held back
and in the ledger with the reason.
"""

from __future__ import annotations

import asyncio

from prometheus_client import REGISTRY

from hub.events import Quality
from hub.sinks.mllp import MllpSink, control_id_for
from hub.store import DELIVERED, HELD
from tests.support.mllp_ehr import MllpEhr
from tests.support.sink_events import T0, alarm, rules_with, vital

CHARTED_AT = {0: "first value", 100: "changed by 20", 400: "interval of 300 s elapsed", 451: "alarm"}


def ten_minutes():
    events = []
    for second in range(600):
        quality = frozenset({Quality.INVALID}) if second == 50 else frozenset()
        events.append(vital("MRN0001", value=100.0 if second >= 100 else 80.0, t=T0 + second, seq=second,
                            quality=quality))
        if second == 450:
            events.append(alarm("MRN0001", source_metric="heart-rate", t=T0 + 450.5, seq=1))
    return events


def metric_counts() -> dict[str, float]:
    return {outcome: REGISTRY.get_sample_value("devsync_sink_events_total", {"sink": "hl7v2", "outcome": outcome})
            or 0.0 for outcome in ("in", DELIVERED, HELD, "dlq", "duplicate")}


def test_one_second_vitals_for_ten_minutes_chart_what_the_policy_prescribes(store):
    before = metric_counts()

    async def scenario():
        ehr = await MllpEhr().start()
        rules = rules_with(sinks={
            "hl7v2": {"host": "127.0.0.1", "port": ehr.port, "max_batch_delay_s": 0.05},
            "charting": [{"sink": "hl7v2", "data_classes": ["vital"], "interval_s": 300, "change_threshold": 15}],
        })
        sink = MllpSink(rules, store, rules.sinks.hl7v2)
        for event in ten_minutes():
            sink.add(event)
        await sink.flush()
        await sink.close()
        await ehr.stop()
        return ehr

    ehr = asyncio.run(scenario())
    vitals = [e for e in ten_minutes() if e.alarm is None]
    charted = [e for e in vitals if round(e.effective_time - T0) in CHARTED_AT]
    assert [control_id_for("hl7v2", [e.event_id]) for e in charted] == ehr.order  # exactly these, in order
    assert [a.message.count("|NM|") for a in ehr.charted.values()] == [1, 1, 1, 1]
    states = store.delivery_states("hl7v2", [e.event_id for e in vitals])
    assert len(states) == 600  # every reading has a fate: in = delivered + held
    for event in vitals:
        second = round(event.effective_time - T0)
        state = states[event.event_id]
        if second in CHARTED_AT:
            assert state.status == DELIVERED
            history = store.story(event.event_id).ledger
            assert history[-1]["status"] == DELIVERED
        else:
            assert state.status == HELD
            assert state.reason == ("not valid (invalid)" if second == 50 else
                                    f"charting interval: last charted at {T0 + _last_before(second):.3f}, next due at {T0 + _last_before(second) + 300:.3f}")
    counts = {c.sink: c for c in store.counts()}["hl7v2"]
    assert counts.by_status == {DELIVERED: 4, HELD: 596}
    exported = {k: v - before[k] for k, v in metric_counts().items()}  # the same counts, as metrics
    assert exported == {"in": 600, DELIVERED: 4, HELD: 596, "dlq": 0, "duplicate": 0}


def _last_before(second: int) -> int:
    return max(t for t in CHARTED_AT if t < second)
