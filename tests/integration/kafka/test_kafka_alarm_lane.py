"""The alarm lane: alarms published to <prefix>.alarms.raw overtake a backlog of vitals.

When the worker starts, 20,000 vitals wait on <prefix>.events.raw and 100 alarms on
<prefix>.alarms.raw (published after the vitals, as `devsync run` routes them). The worker
must take the alarms out of turn: every alarm's stage-1 output (<prefix>.alarms.normalized)
is written before most of the vitals' (<prefix>.events.normalized), judged by the records'
broker timestamps (the order the worker produced them in, not a time limit), and every alarm
reaches <prefix>.observations exactly once. Through one shared raw topic the alarms would
wait behind the vitals of their partitions.
"""

from __future__ import annotations

import asyncio
import statistics
import time

import pytest
import yaml
from kafka_helpers import isolated_rules

from hub.bench.kafka import LineCounter, wait_committed
from hub.bench.kafka_load import live_event, synthetic_events
from hub.events import Event, EventKind
from hub.runtime.kafka_demo import start_worker, wait_ready
from hub.rules.load import load_rules
from hub.runtime.kafka_producer import KafkaPublisher, producer_config
from hub.runtime.kafka_read import read_topics
from hub.runtime.kafka_topics import TopicNames, ensure_topics, topic_specs

pytestmark = pytest.mark.integration
VITALS, DEVICES = 20_000, 200


def vitals_pass_straight_through(tmp_path):
    """Isolated rules whose vitals are not held for reordering: a stream's first reading waits the
    window, which would delay the vitals' stage-1 output by itself and hide the order of work."""
    folder, _ = isolated_rules(tmp_path)
    profiles = yaml.safe_load((folder / "profiles.yaml").read_text())
    profiles["sync_profiles"]["vital"]["reorder_window_s"] = 0
    (folder / "profiles.yaml").write_text(yaml.safe_dump(profiles))
    return folder, load_rules(folder)


def test_alarms_overtake_a_backlog_of_vitals(kafka_bootstrap, tmp_path):
    rules_dir, rules = vitals_pass_straight_through(tmp_path)
    names = TopicNames.from_rules(rules.kafka)
    base = {"bootstrap.servers": kafka_bootstrap}
    ensure_topics(base, topic_specs(rules.kafka))
    now = time.time()
    vitals = synthetic_events(VITALS, DEVICES, now - 600)  # the devices' bindings first
    alarms = [e for i in range(0, 100 * 100, 100) for e in live_event(i, DEVICES, now) if e.kind is EventKind.ALARM]
    assert len(alarms) == 100

    async def publish():
        publisher = KafkaPublisher(producer_config(base), names.raw, alarm_topic=names.alarms_raw)
        for i in range(0, len(vitals), 5000):
            await publisher.publish_many(vitals[i:i + 5000])
        await publisher.publish_many(alarms)
        await asyncio.to_thread(publisher.close)

    asyncio.run(publish())
    stage1_out = LineCounter(base, [names.normalized, names.alarms_normalized])
    worker = start_worker(kafka_bootstrap, rules_dir, tmp_path / "worker.log")
    try:
        wait_ready(worker, timeout_s=120)
        stage1_out.wait_for(VITALS + len(alarms), timeout_s=300)  # stage 1 wrote every event
        wait_committed(base, rules.kafka.app_id, stage1_out.ends, timeout_s=300)  # stage 2 took them all
    finally:
        stage1_out.stop()
        worker.stop()

    normalized = read_topics(base, [names.normalized, names.alarms_normalized])
    vital_times = [r.timestamp_ms for r in normalized if r.topic == names.normalized
                   for _ in r.value.split(b"\n")]
    alarm_times = [r.timestamp_ms for r in normalized if r.topic == names.alarms_normalized
                   for _ in r.value.split(b"\n")]
    assert len(vital_times) == VITALS and len(alarm_times) == len(alarms)
    assert max(alarm_times) < statistics.median(vital_times), (
        f"the last alarm left stage 1 at {max(alarm_times)}, after half the vitals "
        f"({min(vital_times)}..{max(vital_times)}): alarms waited behind the backlog")

    charted = [Event.from_json(r.value) for r in read_topics(base, [names.observations])]
    alarm_ids = [e.event_id for e in charted if e.kind is EventKind.ALARM]
    assert sorted(alarm_ids) == sorted(e.event_id for e in alarms)  # each once
