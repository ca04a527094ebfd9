"""Database of the Holter service (SQLAlchemy Core): tasks, API keys, webhooks and their attempts.

SQLite in the data folder by default (WAL, busy timeout), PostgreSQL when `database_url` says so.
Tables are prefixed `holter_` so they can share a database with the hub's own store.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from sqlalchemy import Boolean, Column, Float, Integer, MetaData, String, Table, Text, create_engine, event, select
from sqlalchemy.engine import Engine

metadata = MetaData()

tasks = Table(
    "holter_tasks", metadata,
    Column("id", String(40), primary_key=True),
    Column("key_id", String(40), nullable=False, index=True),
    Column("state", String(20), nullable=False, index=True),
    Column("filename", String(255), nullable=False),
    Column("file_format", String(20), nullable=False),
    Column("file_size", Integer, nullable=False),
    Column("checksum", String(32), nullable=False),
    Column("duration_hours", Float),
    Column("upload_nonce", String(64), nullable=False),
    Column("upload_expires", Float, nullable=False),
    Column("uploaded", Boolean, nullable=False, default=False),
    Column("submitted_at", Float),
    Column("priority", Integer, nullable=False, default=1),
    Column("request_json", Text),  # the submit body
    Column("progress_json", Text, nullable=False, default="{}"),
    Column("owner", String(64)),  # boot id of the service instance running it
    Column("error_code", String(40)),
    Column("error_message", Text),
    Column("result_json", Text),
    Column("review_json", Text),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

api_keys = Table(
    "holter_api_keys", metadata,
    Column("key_id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("salt", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("webhook_secret", String(80), nullable=False),
    Column("rate_limit_per_minute", Integer),
    Column("revoked", Boolean, nullable=False, default=False),
    Column("created_at", Float, nullable=False),
)

webhooks = Table(
    "holter_webhooks", metadata,
    Column("id", String(40), primary_key=True),
    Column("task_id", String(40), nullable=False, index=True),
    Column("key_id", String(40), nullable=False),
    Column("url", Text, nullable=False),
    Column("event", String(40), nullable=False),
    Column("body", Text, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", Float, nullable=False),
    Column("status", String(20), nullable=False, default="pending"),  # pending | delivered | gave_up
    Column("created_at", Float, nullable=False),
)

webhook_attempts = Table(
    "holter_webhook_attempts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("webhook_id", String(40), nullable=False, index=True),
    Column("attempt", Integer, nullable=False),
    Column("at", Float, nullable=False),
    Column("status_code", Integer),
    Column("error", Text),
    Column("duration_s", Float),
)

meta = Table(
    "holter_meta", metadata,
    Column("name", String(40), primary_key=True),
    Column("value", Text, nullable=False),
)


def database_url(data_dir: Path, configured: str | None) -> str:
    return configured or f"sqlite:///{Path(data_dir).resolve() / 'holter.db'}"


def open_engine(url: str) -> Engine:
    """Engine with the tables created; SQLite gets WAL and a busy timeout (API, workers and webhooks share it)."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection, _record):
            cur = dbapi_connection.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()
    else:
        engine = create_engine(url, pool_pre_ping=True)
    metadata.create_all(engine)
    return engine


def server_secret(engine: Engine) -> bytes:
    """The instance's signing secret for upload URLs (created once, kept in the database)."""
    with engine.begin() as conn:
        row = conn.execute(select(meta.c.value).where(meta.c.name == "upload_secret")).first()
        if row:
            return bytes.fromhex(row[0])
        value = secrets.token_hex(32)
        conn.execute(meta.insert().values(name="upload_secret", value=value))
        return bytes.fromhex(value)
