"""The ledger and audit store on the real PostgreSQL of this machine and on SQLite."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

from hub.cli import main
from hub.resolve.audit import AuditRecord, Candidate
from hub.store import DELIVERED, DLQ, HELD, SENT, Outcome
from hub.store.migrate import current_revision, downgrade_store, head_revision, upgrade_store
from tests.support.sink_events import T0, vital
from tests.support.stores import any_store

TABLES = {"delivery", "ledger", "audit_decision", "audit_candidate", "event_copy", "parked", "dlq", "alembic_version"}


@pytest.fixture
def opened(store_kind, tmp_path):
    with any_store(store_kind, tmp_path) as triple:
        yield triple


def test_migrations_create_every_table_and_downgrade_drops_them(opened):
    store, _, _ = opened
    assert TABLES <= set(inspect(store.engine).get_table_names())
    assert current_revision(store.engine) == head_revision()
    downgrade_store(store.engine, "base")
    assert set(inspect(store.engine).get_table_names()) <= {"alembic_version"}
    upgrade_store(store.engine)
    assert TABLES <= set(inspect(store.engine).get_table_names())


def test_outcomes_move_state_and_delivered_is_final(opened):
    store, _, _ = opened
    store.record_outcomes([Outcome("e1", "hl7v2", SENT, "c1"), Outcome("e2", "hl7v2", SENT, "c1")], now=T0)
    store.record_outcomes([Outcome("e1", "hl7v2", DELIVERED, "c1", detail="ACK AA")], now=T0 + 1)
    store.record_outcomes([Outcome("e1", "hl7v2", SENT, "c9")], now=T0 + 2)  # a late duplicate write
    states = store.delivery_states("hl7v2", ["e1", "e2", "e3"])
    assert states["e1"].status == DELIVERED and states["e1"].control_id == "c1"
    assert states["e2"].status == SENT and "e3" not in states
    assert [row["status"] for row in store.story("e1").ledger] == [SENT, DELIVERED, SENT]  # history keeps all


def test_counts_add_up_per_sink_including_parked(opened):
    store, _, _ = opened
    store.record_outcomes([Outcome(f"d{i}", "fhir", DELIVERED) for i in range(5)]
                          + [Outcome(f"h{i}", "fhir", HELD, reason="charting interval") for i in range(3)])
    store.record_dlq(vital(seq=1), sink="fhir", step="route", reason="no conversion")
    store.record_parked(vital(seq=2, bound=False), "no patient association yet")
    store.record_parked(vital(seq=3, bound=False), "no patient association yet")
    assert store.release_parked(vital(seq=3, bound=False).event_id)
    counts = {c.sink: c for c in store.counts()}
    assert counts["fhir"].by_status == {DELIVERED: 5, HELD: 3, DLQ: 1}
    assert counts["fhir"].total_in == 9
    assert counts["hub"].get("parked") == 1


def test_story_holds_copies_decision_parking_ledger_and_dead_letters(opened):
    store, _, _ = opened
    event = vital(value=72, seq=7)
    rival = vital(value=75, seq=8, t=T0 + 1)
    store.record_event(event, "raw")
    store.record_event(event.with_changes(value=72.0), "normalised")
    store.record_event(event, "raw")  # redelivery: idempotent
    record = AuditRecord(
        decision_id="dec-1", patient_id="MRN0001", metric="heart-rate", window_start=T0, window_end=T0 + 5,
        policy="source-rank", winner_event_id=event.event_id, winner_value=72, reason="monitor ranks first",
        candidates=tuple(Candidate(event_id=e.event_id, device_id=e.device.id, source="monitor", value=e.value,
                                   unit="/min", time=e.effective_time) for e in (event, rival)))
    store.record_decision(record)
    store.record_decision(record)
    store.record_parked(event, "no patient association yet")
    store.release_parked(event.event_id)
    store.record_outcomes([Outcome(event.event_id, "hl7v2", DELIVERED, "c1", detail="ACK AA")])
    store.record_dlq(event, sink="fhir", step="sink.fhir", reason="422 code not accepted", payload="{}")
    story = store.story(event.event_id)
    assert set(story.copies) == {"raw", "normalised"}
    assert [d["decision_id"] for d in story.decisions] == ["dec-1"]
    assert store.story(rival.event_id).decisions[0]["winner_event_id"] == event.event_id
    assert story.parked["released_at"] is not None
    assert {(r["sink"], r["status"]) for r in story.ledger} >= {("hub", "parked"), ("hub", "released"),
                                                                ("hl7v2", DELIVERED), ("fhir", DLQ)}
    assert story.dead_letters[0].reason == "422 code not accepted"


def test_dead_letters_list_and_close(opened):
    store, _, _ = opened
    ids = [store.record_dlq(vital(seq=i), sink="hl7v2", step="route", reason=f"r{i}") for i in range(3)]
    assert [d.id for d in store.dead_letters()] == ids
    store.mark_dead_letters(ids[:1], "replayed", "delivered")
    assert [d.id for d in store.dead_letters()] == ids[1:]
    assert store.dead_letters(status=None, ids=ids[:1])[0].replay_result == "delivered"


def test_buffered_audit_writes_reach_the_database_on_flush(opened):
    store, _, _ = opened
    events = [vital(seq=i, t=T0 + i) for i in range(1200)]
    for event in events:
        store.record_event(event, "normalised")
    store.flush()
    assert all(store.story(e.event_id).copies for e in events[::199])


def test_devsync_db_upgrade_cli(opened, capsys):
    store, url, schema = opened
    downgrade_store(store.engine, "base")
    schema_args = ["--schema", schema] if schema else []
    assert main(["db", "current", "--db", url, *schema_args]) == 1  # behind head: exit 1
    assert main(["db", "upgrade", "--db", url, *schema_args]) == 0
    assert f"revision {head_revision()}" in capsys.readouterr().out
    assert current_revision(store.engine) == head_revision()
    assert main(["db", "current", "--db", url, *schema_args]) == 0


def test_bad_database_url_is_a_clear_error(capsys):
    assert main(["status", "--db", "mysql://nowhere/x"]) == 1
    assert "backend 'mysql' not supported (accepted: sqlite, postgresql)" in capsys.readouterr().err
