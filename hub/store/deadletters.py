"""Parked events and the dead-letter queue."""

from __future__ import annotations

from sqlalchemy import Connection, select, update

from hub.store.dialect import upsert
from hub.store.ledger import write_outcomes
from hub.store.models import dlq, parked
from hub.store.records import DLQ, PARKED, PRE_ROUTING_SINK, RELEASED, DeadLetter, Outcome

OPEN, REPLAYED, FAILED = "open", "replayed", "failed"


def write_parked(conn: Connection, event_id: str, event_json: str, reason: str, now: float) -> None:
    stmt = upsert(conn.dialect.name, parked, ["event_id"], ["reason", "event", "parked_at", "released_at"])
    conn.execute(stmt, [{"event_id": event_id, "reason": reason, "event": event_json, "parked_at": now,
                         "released_at": None}])
    write_outcomes(conn, [Outcome(event_id, PRE_ROUTING_SINK, PARKED, reason=reason)], now)


def write_released(conn: Connection, event_id: str, now: float) -> bool:
    result = conn.execute(update(parked).where(parked.c.event_id == event_id, parked.c.released_at.is_(None))
                          .values(released_at=now))
    if result.rowcount:
        write_outcomes(conn, [Outcome(event_id, PRE_ROUTING_SINK, RELEASED)], now)
    return bool(result.rowcount)


def read_parked(conn: Connection, event_id: str) -> dict | None:
    row = conn.execute(select(parked).where(parked.c.event_id == event_id)).first()
    return dict(row._mapping) if row else None


def write_dead_letters(conn: Connection, letters: list[dict], now: float) -> list[int]:
    """letters: dicts with event_id, sink, step, reason, event (JSON), payload, control_id (optional)."""
    ids = []
    for letter in letters:
        row = {k: letter.get(k) for k in ("event_id", "sink", "step", "reason", "event", "payload")}
        result = conn.execute(dlq.insert().values(**row, status=OPEN, created_at=now))
        ids.append(result.inserted_primary_key[0])
    outcomes = [Outcome(ltr["event_id"], ltr["sink"], DLQ, ltr.get("control_id"), ltr["reason"], f"dlq id {i}")
                for ltr, i in zip(letters, ids)]
    write_outcomes(conn, outcomes, now)
    return ids


def read_dead_letters(conn: Connection, *, status: str | None = OPEN, ids: list[int] | None = None,
                      event_id: str | None = None) -> list[DeadLetter]:
    query = select(dlq).order_by(dlq.c.id)
    if status is not None:
        query = query.where(dlq.c.status == status)
    if ids is not None:
        query = query.where(dlq.c.id.in_(ids))
    if event_id is not None:
        query = query.where(dlq.c.event_id == event_id)
    return [DeadLetter(**row._mapping) for row in conn.execute(query)]


def mark_dead_letters(conn: Connection, ids: list[int], status: str, result: str, now: float) -> None:
    if ids:
        conn.execute(update(dlq).where(dlq.c.id.in_(ids)).values(status=status, replayed_at=now,
                                                                  replay_result=result))
