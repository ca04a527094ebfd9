"""Sink / store tests: make the shared test helpers in tests/support importable, provide stores."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.stores import any_store


@pytest.fixture(params=["sqlite", "postgres"])
def store_kind(request) -> str:
    return request.param


@pytest.fixture
def store(tmp_path):
    """A fresh SQLite ledger (the sink tests' default)."""
    with any_store("sqlite", tmp_path) as (opened, _url, _schema):
        yield opened


@pytest.fixture
def pg_store(tmp_path):
    """A fresh ledger in a unique PostgreSQL schema, dropped afterwards."""
    with any_store("postgres", tmp_path) as (opened, _url, _schema):
        yield opened
