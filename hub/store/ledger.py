"""Delivery ledger: every fate of every observation per sink (history + current state)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from sqlalchemy import Connection, func, select

from hub.store.models import delivery, ledger, parked
from hub.store.records import DELIVERED, PARKED, PRE_ROUTING_SINK, DeliveryState, Outcome, SinkCounts

CHUNK = 500  # ids per IN (...) query
COLUMNS = ("event_id", "sink", "status", "control_id", "reason", "detail", "at")
STATE_COLUMNS = ("event_id", "sink", "status", "control_id", "reason", "detail", "updated_at")
# the state moves to the newest outcome, except that `delivered` is final (same SQL on both dialects)
UPSERT_STATE = (
    "ON CONFLICT (event_id, sink) DO UPDATE SET status = excluded.status, control_id = excluded.control_id, "
    "reason = excluded.reason, detail = excluded.detail, updated_at = excluded.updated_at "
    f"WHERE delivery.status <> '{DELIVERED}'"
)


def write_outcomes(conn: Connection, outcomes: Sequence[Outcome], now: float) -> None:
    """Append to the history and move the current state; a delivered state is never overwritten."""
    if not outcomes:
        return
    history = [(o.event_id, o.sink, o.status, o.control_id, o.reason, o.detail, now) for o in outcomes]
    states = list({(row[0], row[1]): row for row in history}.values())  # the last outcome per key wins
    if conn.dialect.name == "postgresql":
        copy_outcomes(conn, history, states)
        return
    # SQLite: plain executemany of tuples (no per-row statement compilation)
    marks = ", ".join("?" * len(COLUMNS))
    conn.exec_driver_sql(f"INSERT INTO ledger ({', '.join(COLUMNS)}) VALUES ({marks})", history)
    conn.exec_driver_sql(f"INSERT INTO delivery ({', '.join(STATE_COLUMNS)}) VALUES ({marks}) {UPSERT_STATE}", states)


def copy_outcomes(conn: Connection, history: list[tuple], states: list[tuple]) -> None:
    """PostgreSQL: COPY the rows (one round trip per batch), then one set-based upsert of the states."""
    raw = conn.connection.driver_connection
    cursor = raw.cursor()
    if not conn.connection.info.get("delivery_incoming"):
        cursor.execute("CREATE TEMP TABLE IF NOT EXISTS delivery_incoming "
                       "(LIKE delivery INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
        conn.connection.info["delivery_incoming"] = True
    with cursor.copy(f"COPY ledger ({', '.join(COLUMNS)}) FROM STDIN") as copy:
        for row in history:
            copy.write_row(row)
    with cursor.copy(f"COPY delivery_incoming ({', '.join(STATE_COLUMNS)}) FROM STDIN") as copy:
        for row in states:
            copy.write_row(row)
    cursor.execute(f"INSERT INTO delivery ({', '.join(STATE_COLUMNS)}) SELECT {', '.join(STATE_COLUMNS)} "
                   f"FROM delivery_incoming {UPSERT_STATE}")
    cursor.execute("DELETE FROM delivery_incoming")


def read_states(conn: Connection, sink: str, event_ids: Iterable[str]) -> dict[str, DeliveryState]:
    ids = list(dict.fromkeys(event_ids))
    found: dict[str, DeliveryState] = {}
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start:start + CHUNK]
        query = select(delivery.c.event_id, delivery.c.status, delivery.c.control_id, delivery.c.reason,
                       delivery.c.detail).where(delivery.c.sink == sink, delivery.c.event_id.in_(chunk))
        for row in conn.execute(query):
            found[row.event_id] = DeliveryState(row.status, row.control_id, row.reason, row.detail)
    return found


def read_counts(conn: Connection) -> list[SinkCounts]:
    by_sink: dict[str, dict[str, int]] = defaultdict(dict)
    query = (select(delivery.c.sink, delivery.c.status, func.count()).where(delivery.c.sink != PRE_ROUTING_SINK)
             .group_by(delivery.c.sink, delivery.c.status))
    for sink, status, count in conn.execute(query):
        by_sink[sink][status] = count
    waiting = conn.execute(select(func.count()).select_from(parked).where(parked.c.released_at.is_(None))).scalar()
    if waiting:
        by_sink[PRE_ROUTING_SINK][PARKED] = waiting
    return [SinkCounts(sink, dict(statuses)) for sink, statuses in sorted(by_sink.items())]


def read_history(conn: Connection, event_id: str) -> list[dict]:
    query = select(ledger).where(ledger.c.event_id == event_id).order_by(ledger.c.id)
    return [dict(row._mapping) for row in conn.execute(query)]
