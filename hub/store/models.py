"""SQLAlchemy 2 table definitions of the ledger and audit store.

One metadata, seven tables:
  delivery        current fate of one observation at one sink (upserted; what `status` counts)
  ledger          append-only history of every outcome (what `audit show` tells)
  audit_decision  every conflict decision of the resolver (candidates, policy, winner)
  audit_candidate which events took part in which decision (lookup by event id)
  event_copy      raw / normalised copies of an event, per pipeline stage
  parked          events that cannot proceed yet (e.g. no patient association), with why
  dlq             dead letters: the event, the sink and step, the reason; replayable

Times are UTC epoch seconds (floats), as everywhere in the hub. The migrations under
migrations/versions create exactly these tables; keep both in step.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

ID = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrement needs INTEGER PRIMARY KEY

delivery = Table(
    "delivery",
    metadata,
    Column("event_id", String(64), primary_key=True),
    Column("sink", String(32), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("control_id", String(64)),
    Column("reason", Text),
    Column("detail", Text),
    Column("updated_at", Float, nullable=False),
    Index("ix_delivery_sink_status", "sink", "status"),
)

ledger = Table(
    "ledger",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("event_id", String(64), nullable=False, index=True),
    Column("sink", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("control_id", String(64)),
    Column("reason", Text),
    Column("detail", Text),
    Column("at", Float, nullable=False),
)

audit_decision = Table(
    "audit_decision",
    metadata,
    Column("decision_id", String(64), primary_key=True),
    Column("patient_id", String(128), nullable=False),
    Column("metric", String(64), nullable=False),
    Column("policy", String(32), nullable=False),
    Column("winner_event_id", String(64)),
    Column("review", Boolean, nullable=False, default=False),
    Column("record", Text, nullable=False),
    Column("at", Float, nullable=False),
)

audit_candidate = Table(
    "audit_candidate",
    metadata,
    Column("event_id", String(64), primary_key=True),
    Column("decision_id", String(64), primary_key=True),
)

event_copy = Table(
    "event_copy",
    metadata,
    Column("event_id", String(64), primary_key=True),
    Column("stage", String(32), primary_key=True),
    Column("event", Text, nullable=False),
    Column("at", Float, nullable=False),
)

parked = Table(
    "parked",
    metadata,
    Column("event_id", String(64), primary_key=True),
    Column("reason", Text, nullable=False),
    Column("event", Text, nullable=False),
    Column("parked_at", Float, nullable=False),
    Column("released_at", Float),
)

dlq = Table(
    "dlq",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("event_id", String(64), nullable=False, index=True),
    Column("sink", String(32), nullable=False),
    Column("step", String(32), nullable=False),
    Column("reason", Text, nullable=False),
    Column("event", Text, nullable=False),
    Column("payload", Text),
    Column("status", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("replayed_at", Float),
    Column("replay_result", Text),
    Index("ix_dlq_status", "status"),
)
