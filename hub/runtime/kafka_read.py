"""Reading what the workers produced (tests, benchmarks, the Kafka demo): read_committed.

`read_topic` reads every partition of a topic from the beginning up to the high watermark
seen at the start (no consumer group commit); `follow_topics` keeps reading until told to
stop or until no record arrived for `idle_s`. Records keep their topic, partition and
offset so callers can count raw duplicates and check order per partition.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from hub.rules.kafka import KafkaRules

# librdkafka's default fetch.wait.max.ms (500) adds up to half a second to every record read
# from a quiet topic; readers follow live topics (sinks, alarm latency), so they wait less.
READER_FETCH_WAIT_S = KafkaRules.model_fields["fetch_max_wait_s"].default


@dataclass(frozen=True)
class ReadRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple = ()
    timestamp_ms: int = 0


def reader_config(base: dict) -> dict:
    return {"fetch.wait.max.ms": int(READER_FETCH_WAIT_S * 1000), **base,
            "group.id": f"devsync-reader-{uuid.uuid4().hex[:12]}", "enable.auto.commit": False,
            "auto.offset.reset": "earliest", "isolation.level": "read_committed", "enable.partition.eof": False}


def assign_all(consumer: Consumer, topics: list[str], timeout_s: float = 10.0) -> list[TopicPartition]:
    parts = []
    for topic in topics:
        metadata = consumer.list_topics(topic, timeout=timeout_s)
        parts += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in metadata.topics[topic].partitions]
    consumer.assign(parts)
    return parts


def to_record(msg) -> ReadRecord:
    ts = msg.timestamp()[1] if msg.timestamp() else 0
    return ReadRecord(msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value(),
                      tuple(msg.headers() or ()), ts)


def read_topics(base: dict, topics: list[str], timeout_s: float = 30.0) -> list[ReadRecord]:
    """Everything up to each partition's high watermark at the time of the call."""
    consumer = Consumer(reader_config(base))
    try:
        parts = assign_all(consumer, topics)
        ends = {}
        for tp in parts:
            _, high = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=timeout_s)
            ends[(tp.topic, tp.partition)] = high
        pending = {k for k, high in ends.items() if high > 0}
        out: list[ReadRecord] = []
        deadline = time.monotonic() + timeout_s
        while pending and time.monotonic() < deadline:
            for msg in consumer.consume(10000, 0.2):
                if msg.error():
                    continue
                out.append(to_record(msg))
                if msg.offset() + 1 >= ends[(msg.topic(), msg.partition())]:
                    pending.discard((msg.topic(), msg.partition()))
        return out
    finally:
        consumer.close()


def follow_topics(base: dict, topics: list[str], on_record: Callable[[ReadRecord], None], *,
                  stop: Callable[[], bool], idle_s: float | None = None, max_s: float = 600.0) -> None:
    """Call on_record for each record until stop() or no record for idle_s (bounded by max_s)."""
    consumer = Consumer(reader_config(base))
    try:
        assign_all(consumer, topics)
        last = time.monotonic()
        deadline = last + max_s
        while not stop() and time.monotonic() < deadline:
            messages = consumer.consume(10000, 0.05)
            for msg in messages:
                if not msg.error():
                    on_record(to_record(msg))
            if messages:
                last = time.monotonic()
            elif idle_s is not None and time.monotonic() - last > idle_s:
                return
    finally:
        consumer.close()


def read_latest(base: dict, topic: str, partitions: list[int], timeout_s: float = 60.0) -> dict[bytes, tuple[int, bytes]]:
    """Latest value per key in some partitions of a (changelog) topic: key -> (partition, value)."""
    consumer = Consumer(reader_config(base))
    try:
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)[1] for p in partitions}
        pending = {p for p, high in ends.items() if high > 0}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in pending])
        latest: dict[bytes, tuple[int, bytes]] = {}
        deadline = time.monotonic() + timeout_s
        while pending and time.monotonic() < deadline:
            for msg in consumer.consume(10000, 0.2):
                if msg.error():
                    continue
                if msg.value() is None:
                    latest.pop(msg.key(), None)
                else:
                    latest[msg.key()] = (msg.partition(), msg.value())
                if msg.offset() + 1 >= ends[msg.partition()]:
                    pending.discard(msg.partition())
        if pending:
            raise TimeoutError(f"{topic}: partitions {sorted(pending)} not read to their end within {timeout_s}s")
        return latest
    finally:
        consumer.close()
