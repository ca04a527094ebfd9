"""Audit side of the store: conflict decisions and per-stage copies of events."""

from __future__ import annotations

import orjson
from sqlalchemy import Connection, select

from hub.store.dialect import insert_ignore
from hub.store.models import audit_candidate, audit_decision, event_copy


def decision_rows(record, now: float) -> tuple[dict, list[dict]]:
    """AuditRecord -> (decision row, candidate rows)."""
    row = {
        "decision_id": record.decision_id, "patient_id": record.patient_id, "metric": record.metric,
        "policy": record.policy, "winner_event_id": record.winner_event_id, "review": record.review,
        "record": record.to_json().decode(), "at": now,
    }
    candidates = [{"event_id": c.event_id, "decision_id": record.decision_id} for c in record.candidates]
    return row, candidates


def write_decisions(conn: Connection, decisions: list[dict], candidates: list[dict]) -> None:
    if decisions:
        conn.execute(insert_ignore(conn.dialect.name, audit_decision), decisions)
    if candidates:
        conn.execute(insert_ignore(conn.dialect.name, audit_candidate), _unique(candidates))


def write_copies(conn: Connection, copies: list[dict]) -> None:
    if copies:
        conn.execute(insert_ignore(conn.dialect.name, event_copy), _unique(copies, ("event_id", "stage")))


def _unique(rows: list[dict], keys: tuple[str, ...] = ("event_id", "decision_id")) -> list[dict]:
    return list({tuple(r[k] for k in keys): r for r in rows}.values())


def read_copies(conn: Connection, event_id: str) -> dict[str, str]:
    query = select(event_copy.c.stage, event_copy.c.event).where(event_copy.c.event_id == event_id)
    return {row.stage: row.event for row in conn.execute(query.order_by(event_copy.c.at))}


def read_decisions(conn: Connection, event_id: str) -> list[dict]:
    ids = select(audit_candidate.c.decision_id).where(audit_candidate.c.event_id == event_id)
    query = select(audit_decision.c.record).where(
        (audit_decision.c.decision_id.in_(ids)) | (audit_decision.c.winner_event_id == event_id)
    ).order_by(audit_decision.c.at)
    return [orjson.loads(row.record) for row in conn.execute(query)]
