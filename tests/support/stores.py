"""Store fixtures' helpers: SQLite in a temp folder, PostgreSQL (127.0.0.1:5432/test) in a unique schema."""

from __future__ import annotations

import uuid
from contextlib import contextmanager

from hub.store import open_store
from hub.store.engine import drop_schema

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


@contextmanager
def sqlite_store(tmp_path):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    store = open_store(url)
    try:
        yield store, url, None
    finally:
        store.close()


@contextmanager
def postgres_store():
    schema = f"devsync_test_{uuid.uuid4().hex[:12]}"
    store = open_store(POSTGRES_URL, schema=schema)
    try:
        yield store, POSTGRES_URL, schema
    finally:
        store.flush()
        drop_schema(store.engine, schema)
        store.engine.dispose()


@contextmanager
def any_store(kind: str, tmp_path):
    with (sqlite_store(tmp_path) if kind == "sqlite" else postgres_store()) as opened:
        yield opened
