"""The demo ward through Kafka gives the same observations and decisions as the embedded runtime."""

from __future__ import annotations

import pytest
from kafka_helpers import isolated_rules, run_reference, timing_stable

from connectors.simulators.ward import generate_ward_events
from hub.runtime.kafka_demo import run_demo_on_kafka

pytestmark = pytest.mark.integration
DURATION_S = 12.0
SETTLE_S = 12.0


def test_demo_ward_through_kafka_matches_embedded(kafka_bootstrap, tmp_path):
    rules_dir, rules = isolated_rules(tmp_path)
    planned: dict[str, object] = {}

    def ward(start_time: float):
        """Called once the worker is ready; picks the first seed whose outcome is not on a timing edge."""
        for seed in range(7, 40):
            events = generate_ward_events(rules, duration_s=DURATION_S, seed=seed, start_time=start_time)
            if timing_stable(rules, events, start_time, rules.kafka.tick_interval_s, SETTLE_S):
                planned.update(events=events, seed=seed)
                return events
        raise AssertionError("no timing-stable ward scenario among seeds 7..39")

    result = run_demo_on_kafka(rules, ward, kafka_bootstrap, tmp_path / "out", rules_path=rules_dir,
                               settle_s=SETTLE_S, lead_s=6.0)
    reference = run_reference(rules, planned["events"], result.start_time, rules.kafka.tick_interval_s, SETTLE_S)

    expected_obs = {e.event_id: e.value for e in reference.observed}
    got_obs = {e.event_id: e.value for e in result.observations}
    assert len(expected_obs) > 300
    assert got_obs == expected_obs
    expected_audit = {a.decision_id: a.winner_event_id for a in reference.audits}
    got_audit = {a["decision_id"]: a["winner_event_id"] for a in result.audits}
    assert got_audit == expected_audit
    # what the run had to cope with (the ward injects it): real conflicts, parked events, an unknown code
    assert any(len(a["candidates"]) > 1 for a in result.audits)
    assert result.dlq_records >= 1

