"""A worker's binding reader on the real broker: every binding already on the associations topic
is handed over before start() returns (a worker must not take its first batch without them),
and later ones follow in the background."""

from __future__ import annotations

import asyncio
import queue
import time
import uuid

import pytest

from hub.bench.kafka_load import bindings
from hub.runtime.kafka_bindings import BindingReader
from hub.runtime.kafka_producer import KafkaPublisher, producer_config
from hub.runtime.kafka_topics import TopicSpec, ensure_topics

pytestmark = pytest.mark.integration


def publish(base: dict, topic: str, events) -> None:
    async def run() -> None:
        publisher = KafkaPublisher(producer_config(base), topic)
        try:
            await publisher.publish_many(events)
        finally:
            publisher.close(10)

    asyncio.run(run())


def test_bindings_on_the_topic_are_all_read_before_start_returns(kafka_bootstrap):
    base = {"bootstrap.servers": kafka_bootstrap}
    topic = f"bindings-{uuid.uuid4().hex[:8]}.associations"
    ensure_topics(base, [TopicSpec(topic, 4, 1)])
    earlier = bindings(300, 1_700_000_000.0)
    publish(base, topic, earlier)
    sink: queue.SimpleQueue = queue.SimpleQueue()
    reader = BindingReader(base, topic, sink)
    try:
        reader.start()
        assert sink.qsize() == len(earlier)  # at once, not eventually
        later = bindings(310, 1_700_000_100.0)[300:]
        publish(base, topic, later)
        deadline = time.monotonic() + 20
        while sink.qsize() < len(earlier) + len(later) and time.monotonic() < deadline:
            time.sleep(0.05)
        read = [sink.get_nowait() for _ in range(sink.qsize())]
        assert sorted(e.event_id for e in read) == sorted(e.event_id for e in earlier + later)
    finally:
        reader.stop()
