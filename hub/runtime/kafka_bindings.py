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

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from hub.events import Event
from hub.logs import get_logger

log = get_logger("kafka.bindings")


class BindingReader:
    def __init__(self, config: dict, topic: str, sink: queue.SimpleQueue):
        self.topic = topic
        self.sink = sink
        self._consumer = Consumer({**config, "group.id": f"devsync-bindings-{uuid.uuid4().hex[:12]}",
                                   "enable.auto.commit": False, "auto.offset.reset": "earliest"})
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kafka-bindings", daemon=True)
        self.applied = 0

    def start(self, timeout_s: float = 20.0) -> None:
        """Read every binding already on the topic (up to its end at the time of the call), then
        follow it in the background. A worker that starts processing before it knows the
        bindings parks every event of the backlog and releases them again binding by binding."""
        metadata = self._consumer.list_topics(self.topic, timeout=timeout_s)
        partitions = metadata.topics[self.topic].partitions
        self._consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in partitions])
        ends = {p: self._consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=timeout_s)[1]
                for p in partitions}
        behind = {p for p, end in ends.items() if end > 0}
        deadline = time.monotonic() + timeout_s
        while behind and time.monotonic() < deadline:
            for msg in self._read(0.1):
                if msg.offset() + 1 >= ends[msg.partition()]:
                    behind.discard(msg.partition())
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

    def _read(self, timeout_s: float) -> list:
        """One consume: each readable binding goes to the sink; returns the messages read."""
        try:
            messages = self._consumer.consume(500, timeout_s)
        except KafkaException as exc:
            log.warning("binding reader error", topic=self.topic, reason=str(exc))
            return []
        for msg in messages:
            if msg.error() or msg.value() is None:
                continue
            try:
                self.sink.put(Event.from_json(msg.value()))
                self.applied += 1
            except ValueError as exc:
                log.error("unreadable binding skipped", topic=self.topic, offset=msg.offset(), reason=str(exc))
        return [msg for msg in messages if not msg.error()]
