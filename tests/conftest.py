"""Shared fixtures. Real services only: the test broker is started here, not mocked."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from hub.testing.broker import start_broker

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # tests.support.* helpers are importable from every test
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def kafka_broker():
    """A real Kafka-protocol broker (Tansu) on a free loopback port for the whole session."""
    broker = start_broker()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker) -> str:
    return kafka_broker.bootstrap


# ---- audit store / delivery ledger (sinks and store tests) ----

@pytest.fixture(params=["sqlite", "postgres"])
def store_kind(request) -> str:
    return request.param


@pytest.fixture
def store(tmp_path):
    """A fresh SQLite ledger (the sink tests' default)."""
    from tests.support.stores import any_store

    with any_store("sqlite", tmp_path) as (opened, _url, _schema):
        yield opened


@pytest.fixture
def pg_store(tmp_path):
    """A fresh ledger in a unique PostgreSQL schema, dropped afterwards."""
    from tests.support.stores import any_store

    with any_store("postgres", tmp_path) as (opened, _url, _schema):
        yield opened
