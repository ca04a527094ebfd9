"""Factories for the edge unit tests."""

from __future__ import annotations

import contextlib
import sqlite3

import pytest

from edge_buffer.metrics import EdgeMetrics
from edge_buffer.queue import EdgeQueue
from edge_buffer.traffic import StreamSpec, build_event
from hub.events import DataClass, Device
from hub.rules.edge import EdgeRules


@pytest.fixture
def event_factory():
    """event_factory(data_class, seq, device="MON-01", now=1.7e9) -> Event on stream DEVICE/CLASS."""

    def make(data_class: DataClass = DataClass.VITAL, seq: int = 0, device: str = "MON-01", now: float = 1.7e9):
        spec = StreamSpec(Device(id=device, type="multi-parameter-monitor"), data_class, 1.0, "ICU1-BED01")
        return build_event(spec, seq, now + seq, "unit")

    return make


@pytest.fixture
def queue_factory(tmp_path):
    """queue_factory(**edge_settings) -> EdgeQueue on a fresh file (closed after the test)."""
    opened: list[EdgeQueue] = []

    def make(name: str = "buffer.db", **settings) -> EdgeQueue:
        queue = EdgeQueue(tmp_path / name, EdgeRules(**settings), EdgeMetrics())
        opened.append(queue)
        return queue

    yield make
    for queue in opened:
        with contextlib.suppress(sqlite3.ProgrammingError):  # closed by the test already
            queue.close()
