"""Engine from a URL: SQLite for the embedded default, PostgreSQL (psycopg 3) in production.

`schema=` puts every table in one PostgreSQL schema (created when missing); tests use a
unique schema per run and drop it afterwards. SQLite runs in WAL mode with full fsync.
"""

from __future__ import annotations

import re

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url

from hub.errors import HubError

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def normalise_url(url: str) -> str:
    """`postgresql://` and `postgres://` mean psycopg 3 here (psycopg2 is not a dependency)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def make_engine(url: str, *, schema: str | None = None) -> Engine:
    try:
        parsed = make_url(normalise_url(url))
    except Exception as exc:  # sqlalchemy raises ArgumentError with a terse message
        raise HubError(f"database url {url!r}: not a SQLAlchemy URL ({exc}); e.g. sqlite:///devsync.db or "
                       "postgresql://user@host:5432/db") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(parsed)
    if backend == "postgresql":
        return _postgres_engine(parsed, schema)
    raise HubError(f"database url {url!r}: backend {backend!r} not supported (accepted: sqlite, postgresql)")


def _sqlite_engine(url) -> Engine:
    engine = create_engine(url, connect_args={"check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.close()

    return engine


def _postgres_engine(url, schema: str | None) -> Engine:
    connect_args: dict = {}
    if schema is not None:
        if not _SCHEMA_NAME.match(schema):
            raise HubError(f"database schema {schema!r}: use lower-case letters, digits and _ (at most 63)")
        connect_args["options"] = f"-csearch_path={schema}"
    engine = create_engine(url, connect_args=connect_args, pool_pre_ping=True)
    if schema is not None:
        with engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    return engine


def drop_schema(engine: Engine, schema: str) -> None:
    """Drop a PostgreSQL schema and everything in it (test clean-up)."""
    if not _SCHEMA_NAME.match(schema):
        raise HubError(f"database schema {schema!r}: not a valid schema name")
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
