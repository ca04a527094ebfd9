"""The embedded runtime when its database goes away in the middle of a batch (real SQLite, locked).

Another connection holds the SQLite file's write lock (BEGIN EXCLUSIVE), so every write of the
store fails with "database is locked" after the busy timeout, as it does when a backup or a second
process holds the file (PostgreSQL going away is tests/faults/test_fault_postgres_restart.py).
While locked, a batch that parks readings, dead-letters a bad one and fills the audit buffer must
be processed without an exception; the checkpoint fails (input would pause) and, once the lock is
gone, writes every fate exactly once.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from hub.rules.load import load_rules
from hub.runtime.embedded import EmbeddedRuntime
from hub.store import open_store
from hub.store.deadletters import read_parked
from hub.store.models import audit_decision
from hub.testing.factories import association_event, numeric_event

ROOT = Path(__file__).resolve().parents[3]
T0 = 1_700_000_000.0


def test_a_locked_database_mid_batch_pauses_at_the_checkpoint_and_loses_no_fate(tmp_path):
    rules = load_rules(ROOT / "rules")
    store = open_store(f"sqlite:///{tmp_path / 'hub.db'}")
    store.buffer_size = 50  # the batch below fills the audit buffer several times
    runtime = EmbeddedRuntime(rules, store=store)
    bound, unbound = [d for d in rules.devices if d.type == "multi-parameter-monitor" and d.location][:2]
    runtime.process_batch([association_event(bound.location, "P-1", t=T0 - 60)], T0)
    asyncio.run(runtime.checkpoint())

    lock = sqlite3.connect(tmp_path / "hub.db", isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    waiting = [numeric_event(unbound.id, seq=i, t=T0 + i) for i in range(3)]  # no patient: parked
    bad = numeric_event(bound.id, code="147842", unit="furlongs", seq=999, t=T0 + 5)  # unknown unit: DLQ
    readings = [numeric_event(bound.id, seq=i, t=T0 + i) for i in range(200)]
    runtime.process_batch([*waiting, bad, *readings], T0 + 300)  # must not raise: nothing written yet
    runtime.drain(T0 + 400)  # every reading decided: audit rows wait in the buffer
    decided = [sum(runtime.summary.decisions.values())]
    with pytest.raises(OperationalError, match="locked"):
        asyncio.run(runtime.checkpoint())

    lock.execute("ROLLBACK")
    lock.close()
    asyncio.run(runtime.checkpoint())
    asyncio.run(runtime.checkpoint())  # a second checkpoint writes nothing twice
    with store.engine.connect() as conn:
        assert all(read_parked(conn, e.event_id)["reason"] for e in waiting)
    letters = store.dead_letters(status=None)
    assert [letter.event_id for letter in letters] == [bad.event_id]
    assert "furlongs" in letters[0].reason
    with store.engine.connect() as conn:
        decisions = conn.execute(select(func.count()).select_from(audit_decision)).scalar_one()
    assert decisions == decided[0], "every decision of the locked batch reached the audit table once"
