"""ledger, delivery state, audit decisions, event copies, parked and DLQ tables

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "delivery",
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("sink", sa.String(32), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("control_id", sa.String(64)),
        sa.Column("reason", sa.Text),
        sa.Column("detail", sa.Text),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_delivery_sink_status", "delivery", ["sink", "status"])
    op.create_table(
        "ledger",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("sink", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("control_id", sa.String(64)),
        sa.Column("reason", sa.Text),
        sa.Column("detail", sa.Text),
        sa.Column("at", sa.Float, nullable=False),
    )
    op.create_index("ix_ledger_event_id", "ledger", ["event_id"])
    op.create_table(
        "audit_decision",
        sa.Column("decision_id", sa.String(64), primary_key=True),
        sa.Column("patient_id", sa.String(128), nullable=False),
        sa.Column("metric", sa.String(64), nullable=False),
        sa.Column("policy", sa.String(32), nullable=False),
        sa.Column("winner_event_id", sa.String(64)),
        sa.Column("review", sa.Boolean, nullable=False),
        sa.Column("record", sa.Text, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
    )
    op.create_table(
        "audit_candidate",
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("decision_id", sa.String(64), primary_key=True),
    )
    op.create_table(
        "event_copy",
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("stage", sa.String(32), primary_key=True),
        sa.Column("event", sa.Text, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
    )
    op.create_table(
        "parked",
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("event", sa.Text, nullable=False),
        sa.Column("parked_at", sa.Float, nullable=False),
        sa.Column("released_at", sa.Float),
    )
    op.create_table(
        "dlq",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("sink", sa.String(32), nullable=False),
        sa.Column("step", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("event", sa.Text, nullable=False),
        sa.Column("payload", sa.Text),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("replayed_at", sa.Float),
        sa.Column("replay_result", sa.Text),
    )
    op.create_index("ix_dlq_event_id", "dlq", ["event_id"])
    op.create_index("ix_dlq_status", "dlq", ["status"])


def downgrade() -> None:
    for index, table in (("ix_dlq_status", "dlq"), ("ix_dlq_event_id", "dlq"), ("ix_ledger_event_id", "ledger"),
                         ("ix_delivery_sink_status", "delivery")):
        op.drop_index(index, table_name=table)
    for table in ("dlq", "parked", "event_copy", "audit_candidate", "audit_decision", "ledger", "delivery"):
        op.drop_table(table)
