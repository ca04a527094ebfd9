"""Publishing canonical events to Kafka: confluent-kafka idempotent producer, acks=all.

`await publisher.publish(event)` returns only once the broker acknowledged the record
(with acks=all: every in-sync replica has it), so a connector that acks its device after
`await emit(event)` never acks something Kafka does not hold. A failed delivery raises
SinkError(retriable=True), counts in devsync_kafka_publish_failures_total and logs one
line: it is never dropped silently. A full local queue is back-pressure: publish waits.

Keys: raw events by `event.stream` (per-stream order holds: the idempotent producer keeps
order per partition even across retries).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterable

from confluent_kafka import KafkaError, Message, Producer

from hub.errors import SinkError
from hub.events import Event
from hub.logs import get_logger
from hub.runtime.kafka_metrics import PUBLISH_FAILURES, PUBLISH_SECONDS, PUBLISHED

log = get_logger("kafka.publish")


def producer_config(base: dict, *, linger_ms: int = 5, timeout_s: float = 30.0) -> dict:
    return {**base, "enable.idempotence": True, "acks": "all", "linger.ms": linger_ms,
            "batch.num.messages": 10000, "queue.buffering.max.messages": 200_000,
            "message.timeout.ms": int(timeout_s * 1000), "compression.type": "none"}


class KafkaPublisher:
    """One idempotent producer with a poll thread that turns delivery reports into futures."""

    def __init__(self, config: dict, topic: str):
        self.topic = topic
        self._producer = Producer({**config, "error_cb": self._on_error})
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll_loop, name="kafka-publish-poll", daemon=True)
        self._thread.start()

    async def publish(self, event: Event) -> None:
        """Publish one event keyed by its stream; return when the broker acknowledged it."""
        await self.publish_many([event])

    async def publish_many(self, events: Iterable[Event]) -> None:
        """Publish events in order; return when all are acknowledged; SinkError if any is not."""
        loop = asyncio.get_running_loop()
        futures = [await self._produce(loop, self.topic, e.stream.encode(), e.to_json()) for e in events]
        results = await asyncio.gather(*futures, return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]

    async def publish_raw(self, topic: str, key: bytes | None, value: bytes, headers: list | None = None) -> None:
        loop = asyncio.get_running_loop()
        await await_future(await self._produce(loop, topic, key, value, headers))

    async def _produce(self, loop, topic: str, key, value, headers=None) -> asyncio.Future:
        future = loop.create_future()
        started = time.perf_counter()

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            loop.call_soon_threadsafe(settle, future, err, topic, started)

        while True:
            try:
                self._producer.produce(topic, value, key, headers=headers, on_delivery=on_delivery)
                return future
            except BufferError:  # local queue full: back-pressure until the broker catches up
                await asyncio.sleep(0.005)

    def flush(self, timeout_s: float = 30.0) -> int:
        return self._producer.flush(timeout_s)

    def close(self, timeout_s: float = 30.0) -> None:
        remaining = self._producer.flush(timeout_s)
        self._stop.set()
        self._thread.join(5)
        if remaining:
            log.error("records not acknowledged at close", topic=self.topic, count=remaining)

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)

    def _on_error(self, err: KafkaError) -> None:
        log.warning("producer error", topic=self.topic, code=err.name(), reason=err.str(), fatal=err.fatal())


def settle(future: asyncio.Future, err: KafkaError | None, topic: str, started: float) -> None:
    if future.done():
        return
    if err is None:
        PUBLISHED.labels(topic).inc()
        PUBLISH_SECONDS.observe(time.perf_counter() - started)
        future.set_result(None)
        return
    PUBLISH_FAILURES.labels(topic, err.name()).inc()
    log.error("delivery failed", topic=topic, code=err.name(), reason=err.str(), retriable=True)
    future.set_exception(SinkError(f"kafka topic {topic}: delivery failed ({err.name()}: {err.str()}); "
                                   "retry the publish", retriable=True, retry_after=0.5))


async def await_future(future: asyncio.Future) -> None:
    await future


class BatchAck:
    """Counts delivery reports of one batch; resolves once all arrived (errors collected)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, expected: int):
        self.loop = loop
        self.remaining = expected
        self.errors: list[tuple[str, KafkaError]] = []
        self.done = loop.create_future()
        if expected == 0:
            self.done.set_result(None)

    def on_delivery(self, err: KafkaError | None, msg: Message) -> None:  # poll thread
        if err is not None:
            self.errors.append((msg.topic(), err))
        self.remaining -= 1
        if self.remaining == 0:
            self.loop.call_soon_threadsafe(self._finish)

    def _finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)


class RecordSender:
    """Produces a worker's output records; the checkpoint confirms every acknowledgement.

    `produce(records)` hands records to the idempotent producer and returns at once (it
    waits only when the local queue is full: back-pressure). `confirm()` waits until every
    record produced so far is acknowledged (acks=all); the workers call it at each
    checkpoint, before state is written and offsets are committed. A record the broker
    did not acknowledge raises SinkError: the worker must not commit, and stops, so the
    input is replayed from the last commit and the outputs re-produced in order (they are
    deterministic and keyed by event id, so downstream dedupe removes the copies). The
    failure is logged and counted first; nothing is dropped silently.
    """

    def __init__(self, config: dict):
        self._publisher = KafkaPublisher(config, topic="(worker outputs)")
        self._producer = self._publisher._producer
        self._pending: list[tuple[BatchAck, int, float]] = []

    async def produce(self, records) -> None:
        if not records:
            return
        ack = BatchAck(asyncio.get_running_loop(), len(records))
        produce = self._producer.produce
        for r in records:
            while True:
                try:
                    produce(r.topic, r.value, r.key, r.partition, headers=list(r.headers) if r.headers else None,
                            on_delivery=ack.on_delivery)
                    break
                except BufferError:  # local queue full: wait for the broker
                    await asyncio.sleep(0.002)
        self._pending.append((ack, len(records), time.perf_counter()))

    async def confirm(self) -> None:
        """Wait for every acknowledgement of what was produced; SinkError if any record failed."""
        pending, self._pending = self._pending, []
        errors = []
        for ack, count, started in pending:
            await ack.done
            PUBLISH_SECONDS.observe(time.perf_counter() - started)
            PUBLISHED.labels("(worker outputs)").inc(count - len(ack.errors))
            errors += ack.errors
        if errors:
            for topic, err in errors[:3]:
                log.error("output not acknowledged", topic=topic, code=err.name(), reason=err.str(),
                          failed=len(errors))
            for topic, err in errors:
                PUBLISH_FAILURES.labels(topic, err.name()).inc()
            raise SinkError(f"kafka: {len(errors)} output records not acknowledged ({errors[0][1].str()}); "
                            "not committing", retriable=True)

    async def send_all(self, records) -> None:
        """Produce and confirm (everything pending included)."""
        await self.produce(records)
        await self.confirm()

    def close(self) -> None:
        self._publisher.close()
