"""kill -9 a worker in the middle of 50,000+ events, restart it: nothing lost, nothing charted twice.

The raw topic gets the ward's events (2% redelivered, shuffled within and beyond the reorder
window) as fast as the producer goes. The worker is killed with SIGKILL once about a third
of the observations are out (no shutdown, no flush, no commit), and a new one started.
Transport is at-least-once: the observations topic may hold records twice (re-produced
after the crash, same event id); after dedupe by event id every expected observation is
there exactly once and nothing else is, in sequence order per patient, metric and stream.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from pathlib import Path

import pytest
from kafka_helpers import (check_delivery, IdFollower, expected_observations, observations_in_topic_order,
                           resolution_off_rules, scenario_events, wait_until)

from hub.runtime.kafka_demo import start_worker, wait_ready
from hub.runtime.kafka_producer import KafkaPublisher, producer_config
from hub.runtime.kafka_topics import TopicNames, ensure_topics, topic_specs

pytestmark = pytest.mark.integration
FAULTS = Path(__file__).resolve().parents[2] / "faults"  # fault_report: the fault scenarios' counts line
DURATION_S = 1100.0  # about 52,000 events
RATE_PER_S = 4000.0


async def publish_all(bootstrap: str, topic: str, events, rate_per_s: float = RATE_PER_S) -> None:
    """Publish at a steady rate (as connectors do), in delivery order."""
    publisher = KafkaPublisher(producer_config({"bootstrap.servers": bootstrap}), topic)
    started = time.monotonic()
    for i in range(0, len(events), 500):
        await asyncio.sleep(max(0.0, started + i / rate_per_s - time.monotonic()))
        await publisher.publish_many(events[i:i + 500])
    publisher.close()


def test_worker_killed_mid_stream_loses_nothing_and_duplicates_nothing(kafka_bootstrap, tmp_path):
    rules_dir, rules = resolution_off_rules(tmp_path)
    names = TopicNames.from_rules(rules.kafka)
    events = scenario_events(rules, DURATION_S)
    assert len(events) >= 50_000
    expected = expected_observations(rules, events)
    ensure_topics({"bootstrap.servers": kafka_bootstrap}, topic_specs(rules.kafka))

    follower = IdFollower(kafka_bootstrap, names.observations)
    seen = follower.seen
    first = start_worker(kafka_bootstrap, rules_dir, tmp_path / "worker-1.log")
    second = None
    try:
        wait_ready(first)
        publisher = threading.Thread(target=lambda: asyncio.run(publish_all(kafka_bootstrap, names.raw, events)))
        publisher.start()
        wait_until(lambda: len(seen) >= len(expected) // 3, 180, "a third of the observations")
        first.kill()  # SIGKILL mid-stream, while events are still being published
        killed_at = len(seen)
        assert killed_at < len(expected), "the worker finished before it was killed: nothing was tested"
        second = start_worker(kafka_bootstrap, rules_dir, tmp_path / "worker-2.log")
        publisher.join(120)
        wait_until(lambda: len(seen) >= len(expected), 240, "every expected observation after the restart")
        time.sleep(2.0)  # anything produced twice after the last expected one is counted too
    finally:
        follower.stop()
        for worker in (first, second):
            if worker is not None:
                worker.stop()

    check = check_delivery(observations_in_topic_order(kafka_bootstrap, rules), expected)
    print(f"\ncrash test: {len(events)} events published, {len(expected)} expected observations, "
          f"killed after {killed_at}; observations topic held {check.records} records, {check.unique} unique, "
          f"{check.duplicates} raw duplicates (at-least-once re-production), {check.late} flagged late")
    if str(FAULTS) not in sys.path:
        sys.path.insert(0, str(FAULTS))
    from fault_report import FaultCounts, report

    # duplicated: observations charted beyond one per expected observation after dedupe by event id
    report(FaultCounts("kafka-worker-kill-9", sent=len(expected), delivered=len(expected) - len(check.missing),
                       duplicated=len(check.unexpected),
                       figures={"events_published": len(events), "killed_after": killed_at,
                                "observation_records": check.records, "transport_copies": check.duplicates,
                                "late": check.late}))
    assert not check.missing
    assert not check.unexpected
    assert check.unique == len(expected)
    assert check.out_of_order == 0
