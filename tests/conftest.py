"""Shared fixtures. Real services only: the test broker is started here, not mocked."""

from __future__ import annotations

import pytest

from hub.testing.broker import start_broker


@pytest.fixture(scope="session")
def kafka_broker():
    """A real Kafka-protocol broker (Tansu) on a free loopback port for the whole session."""
    broker = start_broker()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker) -> str:
    return kafka_broker.bootstrap
