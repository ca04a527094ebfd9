"""Fault: a Kafka worker is killed with SIGKILL, restarted, and killed again right after the restart.

The raw topic gets the ward's events (2% redelivered, shuffled within and beyond the reorder
window; conflict resolution off, so every valid reading is its own expected observation) at a
steady 500 events/s. Worker 1 is killed (kill -9: no shutdown, no flush, no commit) once a
quarter of the observations are out. Worker 2 is started, and killed the same way 1.5 s after
its rebalance completed, once it has produced observations of its own: with commit_interval_s=5
that is before its first commit, so everything it did is re-done. Worker 3 finishes the stream.
Publishing goes on through both kills. (tests/integration/kafka/test_kafka_crash.py is the long
single-kill run over 50,000+ events; this one is the short double kill.)

Counted at the far end, the observations topic read from the beginning, after the documented
dedupe by event id: sent = the observations the embedded runtime produces for the same events;
delivered = those present; duplicated = unique observation ids beyond that set (what an EHR
would chart a second time). Records repeated under the same event id (re-produced after a kill)
are at-least-once transport copies: the `transport_copies` figure, removed by the dedupe.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from fault_report import FaultCounts, report
from kafka_faults_support import effect_counts
from kafka_helpers import (
    check_delivery,
    IdFollower,
    expected_observations,
    observations_in_topic_order,
    resolution_off_rules,
    scenario_events,
    wait_until,
)
from test_kafka_crash import publish_all

from hub.runtime.kafka_demo import start_worker, wait_ready
from hub.runtime.kafka_topics import TopicNames, ensure_topics, topic_specs

pytestmark = [pytest.mark.integration, pytest.mark.faults]
DURATION_S = 400.0  # about 19,000 events of the ward
RATE_PER_S = 500.0  # steady load: publishing lasts about 40 s, through both kills
COMMIT_INTERVAL_S = 5.0
SECOND_KILL_AFTER_READY_S = 1.5


@pytest.mark.timeout(240)
def test_worker_killed_twice_in_a_row_loses_nothing_and_charts_nothing_twice(kafka_bootstrap, tmp_path):
    started = time.monotonic()
    rules_dir, rules = resolution_off_rules(tmp_path, commit_interval_s=COMMIT_INTERVAL_S)
    names = TopicNames.from_rules(rules.kafka)
    events = scenario_events(rules, DURATION_S, seed=11)
    expected = expected_observations(rules, events)
    ensure_topics({"bootstrap.servers": kafka_bootstrap}, topic_specs(rules.kafka))

    follower = IdFollower(kafka_bootstrap, names.observations)
    seen = follower.seen
    workers = [start_worker(kafka_bootstrap, rules_dir, tmp_path / "worker-1.log")]
    publisher = None
    try:
        wait_ready(workers[0])
        publisher = threading.Thread(target=lambda: asyncio.run(
            publish_all(kafka_bootstrap, names.raw, events, rate_per_s=RATE_PER_S)))
        publisher.start()
        wait_until(lambda: len(seen) >= len(expected) // 4, 120, "a quarter of the observations")
        workers[0].kill()
        first_kill_at = len(seen)

        workers.append(start_worker(kafka_bootstrap, rules_dir, tmp_path / "worker-2.log"))
        wait_ready(workers[1])
        ready_at = len(seen)
        time.sleep(SECOND_KILL_AFTER_READY_S)
        wait_until(lambda: len(seen) > ready_at, 20, "observations from the restarted worker")
        workers[1].kill()
        second_kill_at = len(seen)
        assert publisher.is_alive(), "publishing ended before the second kill: not under load"
        assert second_kill_at < len(expected), "the stream was done before the second kill: nothing was tested"

        workers.append(start_worker(kafka_bootstrap, rules_dir, tmp_path / "worker-3.log"))
        publisher.join(120)
        wait_until(lambda: len(seen) >= len(expected), 150, "every expected observation after the second restart")
        time.sleep(2.0)  # anything produced twice after the last expected one is counted too
    finally:
        follower.stop()
        for worker in workers:
            worker.stop()
        if publisher is not None:
            publisher.join(30)

    check = check_delivery(observations_in_topic_order(kafka_bootstrap, rules), expected)
    assert check.out_of_order == 0, f"{check.out_of_order} observations out of sequence order"
    effect = effect_counts(expected, set(expected) - check.missing | check.unexpected)
    report(FaultCounts(
        "kafka-worker-kill-9-twice", sent=len(expected), delivered=effect.delivered, duplicated=effect.duplicated,
        figures={"events_published": len(events), "first_kill_after": first_kill_at,
                 "second_worker_ready_at": ready_at, "second_kill_after": second_kill_at,
                 "observation_records": check.records, "transport_copies": check.duplicates, "late": check.late,
                 "wall_s": round(time.monotonic() - started, 1)}))
