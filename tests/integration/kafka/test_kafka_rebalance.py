"""Two workers share the partitions; one leaves mid-stream; nothing lost, nothing charted twice.

Both workers run both stages in one consumer group. Once a third of the observations are
out, the second worker is stopped (SIGTERM: it checkpoints its state, commits and leaves
the group); the first takes over its partitions, reloads their state from the changelog
topics and continues from the committed offsets.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from kafka_helpers import (check_delivery, IdFollower, expected_observations, observations_in_topic_order,
                           resolution_off_rules, scenario_events, wait_until)
from test_kafka_crash import publish_all

from hub.runtime.kafka_demo import start_worker, wait_ready
from hub.runtime.kafka_topics import TopicNames, ensure_topics, topic_specs

pytestmark = pytest.mark.integration
DURATION_S = 300.0  # about 14,000 events


def assigned_partitions(log_text: str) -> list[str]:
    return [line.rsplit("raw_partitions=", 1)[1].strip() for line in log_text.splitlines() if "raw_partitions=" in line]


def test_worker_leaving_mid_stream_hands_over_without_loss_or_duplicates(kafka_bootstrap, tmp_path):
    rules_dir, rules = resolution_off_rules(tmp_path)
    names = TopicNames.from_rules(rules.kafka)
    events = scenario_events(rules, DURATION_S, seed=5)
    expected = expected_observations(rules, events)
    ensure_topics({"bootstrap.servers": kafka_bootstrap}, topic_specs(rules.kafka))

    follower = IdFollower(kafka_bootstrap, names.observations)
    seen = follower.seen
    first = start_worker(kafka_bootstrap, rules_dir, tmp_path / "worker-a.log")
    second = None
    try:
        wait_ready(first)
        second = start_worker(kafka_bootstrap, rules_dir, tmp_path / "worker-b.log")
        wait_ready(second)
        wait_until(lambda: first.ready_count() >= 2, 60, "the first worker to give up partitions")
        shared = assigned_partitions(second.log_text())[-1]
        assert shared != "none", "the second worker got no partition: nothing would be handed over"
        publisher = threading.Thread(target=lambda: asyncio.run(
            publish_all(kafka_bootstrap, names.raw, events, rate_per_s=2000.0)))
        publisher.start()
        wait_until(lambda: len(seen) >= len(expected) // 3, 150, "a third of the observations")
        second.stop()  # leaves the group mid-stream
        left_at = len(seen)
        assert second.process.returncode == 0, second.log_text()[-2000:]
        publisher.join(120)
        wait_until(lambda: len(seen) >= len(expected), 180, "every expected observation after the hand-over")
        time.sleep(2.0)
        took_over = assigned_partitions(first.log_text())[-1]
    finally:
        follower.stop()
        for worker in (first, second):
            if worker is not None:
                worker.stop()

    check = check_delivery(observations_in_topic_order(kafka_bootstrap, rules), expected)
    print(f"\nrebalance test: {len(events)} events, {len(expected)} expected observations; worker b had partitions "
          f"{shared} and left after {left_at}; worker a then had {took_over}; observations topic held "
          f"{check.records} records, {check.unique} unique, {check.duplicates} raw duplicates, {check.late} late")
    assert took_over == "0,1,2,3"
    assert not check.missing
    assert not check.unexpected
    assert check.unique == len(expected)
    assert check.out_of_order == 0
