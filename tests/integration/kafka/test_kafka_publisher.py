"""The connectors' Kafka publisher against the real test broker: what it acknowledges is on the
topic, in order per stream, alarms on the alarm lane; what the broker does not take fails the
publish call (retriable SinkError, counted and logged), never silently."""

from __future__ import annotations

import asyncio
import uuid

import orjson
import pytest

from hub.bench.kafka_load import live_event
from hub.errors import SinkError
from hub.events import EventKind
from hub.runtime.kafka_metrics import PUBLISH_FAILURES, PUBLISHED
from hub.runtime.kafka_producer import KafkaPublisher, producer_config
from hub.runtime.kafka_read import read_topics
from hub.runtime.kafka_topics import TopicSpec, ensure_topics
from hub.testing.broker import free_port

pytestmark = pytest.mark.integration


def test_acknowledged_events_are_on_their_topics_in_order_per_stream(kafka_bootstrap):
    base = {"bootstrap.servers": kafka_bootstrap}
    vitals, alarms = f"pub-{uuid.uuid4().hex[:8]}.raw", f"pub-{uuid.uuid4().hex[:8]}.alarms"
    ensure_topics(base, [TopicSpec(vitals, 4, 1), TopicSpec(alarms, 4, 1)])
    events = [e for i in range(3000) for e in live_event(i, 20, 1_700_000_000.0 + i)]
    published_before = PUBLISHED.labels(vitals)._value.get()

    async def publish() -> None:
        publisher = KafkaPublisher(producer_config(base), vitals, alarms)
        try:
            await asyncio.gather(*(publisher.publish_many(events[i:i + 250]) for i in range(0, len(events), 250)))
            await publisher.publish(events[0])  # one more copy of the first event: a re-send
        finally:
            publisher.close(10)

    asyncio.run(publish())
    records = read_topics(base, [vitals, alarms])
    by_topic = {topic: [orjson.loads(r.value) for r in records if r.topic == topic] for topic in (vitals, alarms)}
    assert {e["kind"] for e in by_topic[alarms]} == {EventKind.ALARM.value}
    assert len(by_topic[alarms]) == sum(e.kind is EventKind.ALARM for e in events)
    assert len(by_topic[vitals]) == sum(e.kind is not EventKind.ALARM for e in events) + 1
    assert PUBLISHED.labels(vitals)._value.get() - published_before == len(by_topic[vitals])
    resent = events[0]
    for stream in {e.stream for e in events}:
        in_partition_order = sorted((r for r in records if r.key == stream.encode()), key=lambda r: r.offset)
        seqs = [orjson.loads(r.value)["seq"] for r in in_partition_order]
        if stream == resent.stream:
            assert seqs.pop() == resent.seq  # the re-send came last
        assert seqs == sorted(set(seqs))  # published order, each once


def test_a_record_the_broker_never_takes_fails_the_publish_retriably():
    """Nothing listens on the port: after message.timeout.ms the publish fails, retriable, counted."""
    topic = f"nowhere-{uuid.uuid4().hex[:8]}"
    config = producer_config({"bootstrap.servers": f"127.0.0.1:{free_port()}"}, timeout_s=1.0)

    async def publish() -> SinkError:
        publisher = KafkaPublisher({**config, "log_level": 0}, topic)
        try:
            with pytest.raises(SinkError) as raised:
                await asyncio.wait_for(publisher.publish_many(live_event(0, 1, 1_700_000_000.0)), 20)
            return raised.value
        finally:
            publisher.close(0)

    error = asyncio.run(publish())
    assert error.retriable and error.retry_after
    assert "_MSG_TIMED_OUT" in str(error) and topic in str(error)
    assert PUBLISH_FAILURES.labels(topic, "_MSG_TIMED_OUT")._value.get() >= 1


def test_one_publisher_serves_one_event_loop_after_another(kafka_bootstrap):
    """A publisher outlives the loop it first published from (a CLI command's asyncio.run, then another)."""
    base = {"bootstrap.servers": kafka_bootstrap}
    topic = f"pub-{uuid.uuid4().hex[:8]}.raw"
    ensure_topics(base, [TopicSpec(topic, 4, 1)])
    publisher = KafkaPublisher(producer_config(base), topic)
    runs = [live_event(run, 5, 1_700_000_000.0 + run) for run in range(3)]
    try:
        for events in runs:
            asyncio.run(asyncio.wait_for(publisher.publish_many(events), 20))
    finally:
        publisher.close(10)
    assert sorted(r.value for r in read_topics(base, [topic])) == sorted(e.to_json() for events in runs for e in events)
