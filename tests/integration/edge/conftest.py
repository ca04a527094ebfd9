"""Fixtures for the edge integration tests: a private Mosquitto (real broker, no persistence)."""

from __future__ import annotations

import pytest
from edge_support import start_mosquitto


@pytest.fixture(scope="session")
def edge_mosquitto() -> int:
    """Port of a private Mosquitto on 127.0.0.1 (unlimited queues, TCP_NODELAY), stopped after the session."""
    proc, port = start_mosquitto()
    yield port
    proc.terminate()
    proc.wait(10)
