"""Every stage-1 worker needs every patient binding, whichever worker saw the ADT event.

Stage 1 publishes each association event it accepts to the compacted associations topic
(key = event id). This reader, one per worker, assigns itself every partition of that
topic from the beginning (no consumer group: it is a replica, not a share of the work)
and hands the events to the stage-1 runner through a thread-safe queue; the runner
applies them at its next batch or tick and releases the events they unpark. Applying a
binding twice is harmless (a timeline entry at the same time is replaced).
"""

from __future__ import annotations

import queue
import threading
import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from hub.events import Event
from hub.logs import get_logger
from hub.runtime.kafka_read import READER_FETCH_WAIT_S

log = get_logger("kafka.bindings")


class BindingReader:
    def __init__(self, config: dict, topic: str, sink: queue.SimpleQueue, fetch_wait_s: float = READER_FETCH_WAIT_S):
        self.topic = topic
        self.sink = sink
        # a short fetch wait (kafka.fetch_max_wait_s): librdkafka's 0.5 s default would delay every
        # binding reaching the other workers, and a worker's start on an empty topic, by that much
        self._consumer = Consumer({**config, "group.id": f"devsync-bindings-{uuid.uuid4().hex[:12]}",
                                   "enable.auto.commit": False, "auto.offset.reset": "earliest",
                                   "enable.partition.eof": True, "fetch.wait.max.ms": int(fetch_wait_s * 1000)})
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kafka-bindings", daemon=True)
        self.applied = 0

    def start(self, timeout_s: float = 20.0) -> None:
        """Read every binding already on the topic (up to its end at the time of the call), then
        follow it in the background. A worker that started processing before it knew the bindings
        would park the events of its backlog and release them again as the bindings came in."""
        metadata = self._consumer.list_topics(self.topic, timeout=timeout_s)
        partitions = metadata.topics[self.topic].partitions
        self._consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in partitions])
        behind = set(partitions)  # until the consumer reports the partition's end (partition EOF)
        deadline = time.monotonic() + timeout_s
        while behind and time.monotonic() < deadline:
            behind -= self._read(0.1)
        if behind:
            log.warning("bindings not all read before start; the rest follow", topic=self.topic,
                        partitions=sorted(behind))
        log.info("bindings read", topic=self.topic, count=self.applied)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self._consumer.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._read(0.1)

    def _read(self, timeout_s: float) -> set[int]:
        """One consume: each readable binding goes to the sink; returns the partitions read to their end."""
        try:
            messages = self._consumer.consume(500, timeout_s)
        except KafkaException as exc:
            log.warning("binding reader error", topic=self.topic, reason=str(exc))
            return set()
        at_end = set()
        for msg in messages:
            if msg.error() is not None:
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    at_end.add(msg.partition())
                continue
            if msg.value() is None:
                continue
            try:
                self.sink.put(Event.from_json(msg.value()))
                self.applied += 1
            except ValueError as exc:
                log.error("unreadable binding skipped", topic=self.topic, offset=msg.offset(), reason=str(exc))
        return at_end
