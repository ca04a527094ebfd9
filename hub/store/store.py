"""The store facade the runtimes and sinks use: synchronous, batched, safe for one asyncio loop.

    store = open_store("sqlite:///devsync.db")          # or postgresql://host/db
    store.record_event(event, "raw"); store.record_decision(audit_record)   # buffered
    store.record_outcomes([Outcome(...)])                                    # written at once
    store.flush()                                        # the runtime calls this at its checkpoint

Audit copies and decisions are buffered (idempotent inserts of deterministic ids) and written
when `buffer_size` rows wait, `buffer_age_s` passed, before every read, and on flush()/close().
A write the buffer starts by itself (size or age) that fails because the database is away keeps
the rows and is logged, not raised: the caller is in the middle of a batch; the next flush() (the
runtime's checkpoint, which pauses input and retries) raises it.
Ledger outcomes, parked events and dead letters are written at once: they are already batched
by the sinks, and a dead letter must never wait in memory.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence

from sqlalchemy import Engine
from sqlalchemy.exc import InterfaceError, OperationalError

from hub.store import audit, deadletters, ledger
from hub.store.engine import make_engine
from hub.store.migrate import upgrade_store
from hub.logs import get_logger
from hub.store.records import DeadLetter, DeliveryState, Outcome, SinkCounts, Story

log = get_logger("store")
DB_UNAVAILABLE = (OperationalError, InterfaceError)  # the database is away or the connection broke: retriable


class Store:
    def __init__(self, engine: Engine, *, buffer_size: int = 500, buffer_age_s: float = 1.0):
        self.engine = engine
        self.buffer_size = buffer_size
        self.buffer_age_s = buffer_age_s
        self._lock = threading.RLock()
        self._decisions: list[dict] = []
        self._candidates: list[dict] = []
        self._copies: list[dict] = []
        self._oldest: float | None = None
        self._left_for_flush = False  # a write the buffer started failed: only flush() tries again

    # --- buffered audit writes ---
    def record_decision(self, record, *, now: float | None = None) -> None:
        row, candidates = audit.decision_rows(record, _now(now))
        with self._lock:
            self._decisions.append(row)
            self._candidates.extend(candidates)
            self._maybe_flush()

    def record_event(self, event, stage: str, *, now: float | None = None) -> None:
        row = {"event_id": event.event_id, "stage": stage, "event": event.to_json().decode(), "at": _now(now)}
        with self._lock:
            self._copies.append(row)
            self._maybe_flush()

    def _maybe_flush(self) -> None:
        now = time.monotonic()
        if self._oldest is None:
            self._oldest = now
        waiting = len(self._decisions) + len(self._copies)
        if self._left_for_flush:
            return
        if waiting >= self.buffer_size or now - self._oldest >= self.buffer_age_s:
            try:
                self.flush()
            except DB_UNAVAILABLE as exc:
                self._left_for_flush = True  # until a flush() succeeds: no write attempt per row meanwhile
                log.warning("audit write failed, rows kept for the checkpoint", rows=waiting, error=type(exc).__name__)

    def flush(self) -> None:
        with self._lock:
            if not (self._decisions or self._copies):
                return
            decisions, candidates, copies = self._decisions, self._candidates, self._copies
            with self.engine.begin() as conn:
                audit.write_decisions(conn, decisions, candidates)
                audit.write_copies(conn, copies)
            self._decisions, self._candidates, self._copies, self._oldest = [], [], [], None
            self._left_for_flush = False

    # --- ledger ---
    def record_outcomes(self, outcomes: Sequence[Outcome], *, now: float | None = None) -> None:
        if outcomes:
            with self._lock, self.engine.begin() as conn:
                ledger.write_outcomes(conn, outcomes, _now(now))

    def delivery_states(self, sink: str, event_ids: Iterable[str]) -> dict[str, DeliveryState]:
        with self._lock, self.engine.connect() as conn:
            return ledger.read_states(conn, sink, event_ids)

    def counts(self) -> list[SinkCounts]:
        self.flush()
        with self.engine.connect() as conn:
            return ledger.read_counts(conn)

    # --- parked ---
    def record_parked(self, event, reason: str, *, now: float | None = None) -> None:
        with self._lock, self.engine.begin() as conn:
            deadletters.write_parked(conn, event.event_id, event.to_json().decode(), reason, _now(now))

    def release_parked(self, event_id: str, *, now: float | None = None) -> bool:
        with self._lock, self.engine.begin() as conn:
            return deadletters.write_released(conn, event_id, _now(now))

    # --- dead letters ---
    def record_dlq(self, event, *, sink: str, step: str, reason: str, payload: str | None = None,
                   control_id: str | None = None, now: float | None = None) -> int:
        letter = {"event_id": event.event_id, "sink": sink, "step": step, "reason": reason,
                  "event": event.to_json().decode(), "payload": payload, "control_id": control_id}
        return self.record_dead_letters([letter], now=now)[0]

    def record_dead_letters(self, letters: list[dict], *, now: float | None = None) -> list[int]:
        if not letters:
            return []
        with self._lock, self.engine.begin() as conn:
            return deadletters.write_dead_letters(conn, letters, _now(now))

    def dead_letters(self, *, status: str | None = deadletters.OPEN, ids: list[int] | None = None,
                     event_id: str | None = None) -> list[DeadLetter]:
        with self.engine.connect() as conn:
            return deadletters.read_dead_letters(conn, status=status, ids=ids, event_id=event_id)

    def mark_dead_letters(self, ids: list[int], status: str, result: str, *, now: float | None = None) -> None:
        with self._lock, self.engine.begin() as conn:
            deadletters.mark_dead_letters(conn, ids, status, result, _now(now))

    # --- the whole story of one reading ---
    def story(self, event_id: str) -> Story:
        self.flush()
        with self.engine.connect() as conn:
            return Story(
                event_id=event_id,
                copies=audit.read_copies(conn, event_id),
                decisions=audit.read_decisions(conn, event_id),
                ledger=ledger.read_history(conn, event_id),
                parked=deadletters.read_parked(conn, event_id),
                dead_letters=deadletters.read_dead_letters(conn, status=None, event_id=event_id),
            )

    def close(self) -> None:
        self.flush()
        self.engine.dispose()


def _now(now: float | None) -> float:
    return time.time() if now is None else now


def open_store(url: str, *, schema: str | None = None, migrate: bool = True) -> Store:
    """Open the store at `url`; by default bring its tables to the newest migration first."""
    engine = make_engine(url, schema=schema)
    if migrate:
        upgrade_store(engine)
    return Store(engine)
