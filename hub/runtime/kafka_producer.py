"""Publishing canonical events to Kafka: confluent-kafka idempotent producer, acks=all.

`await publisher.publish(event)` returns only once the broker acknowledged the record
(with acks=all: every in-sync replica has it), so a connector that acks its device after
`await emit(event)` never acks something Kafka does not hold. A failed delivery raises
SinkError(retriable=True), counts in devsync_kafka_publish_failures_total and logs one
line: it is never dropped silently. A full local queue is back-pressure: publish waits.

Keys: raw events by `event.stream` (per-stream order holds: the idempotent producer keeps
order per partition even across retries). With `alarm_topic` set, alarms go there (the alarm
lane, <prefix>.alarms.raw) and everything else to `topic`: connectors keep alarms and
readings on separate streams, so per-stream order is unaffected.

A producer can get stuck for good when a broker comes back without its idempotent-producer
state: librdkafka raises a fatal error from poll() (OUT_OF_ORDER_SEQUENCE_NUMBER), or keeps
bumping its epoch on UNKNOWN_PRODUCER_ID and never delivers again, or is fenced (PRODUCER_FENCED
on every record) once the broker hands its producer id out again (all seen with the Tansu test
broker after a restart). So on a fatal error, or once a record failed with one of `STUCK`
(including a timeout: message.timeout.ms without an acknowledgement), the publisher fails every
publish still waiting with a retriable SinkError (the caller re-sends; downstream dedupe by
event id removes a copy the broker had already taken) and carries on with a new producer (a new
producer id), instead of leaving publishes waiting or failing forever.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from collections.abc import Iterable

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from hub.errors import SinkError
from hub.events import Event, EventKind
from hub.logs import get_logger
from hub.runtime.kafka_metrics import PUBLISH_FAILURES, PUBLISH_SECONDS, PUBLISHED

log = get_logger("kafka.publish")
# Delivery errors after which this producer (its producer id and epoch) will not deliver again.
STUCK = frozenset({KafkaError._MSG_TIMED_OUT, KafkaError.PRODUCER_FENCED, KafkaError._FENCED,
                   KafkaError.INVALID_PRODUCER_EPOCH, KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER,
                   KafkaError.UNKNOWN_PRODUCER_ID})


def producer_config(base: dict, *, linger_ms: int = 5, timeout_s: float = 30.0) -> dict:
    return {**base, "enable.idempotence": True, "acks": "all", "linger.ms": linger_ms,
            "batch.num.messages": 10000, "queue.buffering.max.messages": 200_000,
            "message.timeout.ms": int(timeout_s * 1000), "compression.type": "none"}


class KafkaPublisher:
    """One idempotent producer with a poll thread whose delivery reports settle each publish call."""

    def __init__(self, config: dict, topic: str, alarm_topic: str | None = None):
        self.topic = topic
        self.alarm_topic = alarm_topic or topic
        self._config = {**config, "error_cb": self._on_error}
        self._producer = Producer(self._config)
        # publishes not yet settled, in the order produced (event loop thread only)
        self._waiting: dict[Publish, None] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stuck: KafkaError | None = None  # set by a delivery report (poll thread): replace the producer
        # delivery reports (poll thread) waiting to settle their futures (event loop thread): one
        # wake-up of the loop per poll, not per record (a wake-up is a system call)
        self._reports: collections.deque = collections.deque()
        self._settling_scheduled = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll_loop, name="kafka-publish-poll", daemon=True)
        self._thread.start()

    async def publish(self, event: Event) -> None:
        """Publish one event keyed by its stream; return when the broker acknowledged it."""
        await self.publish_many([event])

    async def publish_many(self, events: Iterable[Event]) -> None:
        """Publish events in order; return when all are acknowledged; SinkError if any is not."""
        topic_for = self.topic_for
        await self._publish([(topic_for(e), e.stream.encode(), e.to_json(), None) for e in events])

    async def publish_encoded(self, records: Iterable[tuple[str, bytes | None, bytes]]) -> None:
        """Publish records already encoded, (topic, key, value) each, in order; as publish_many."""
        await self._publish([(topic, key, value, None) for topic, key, value in records])

    def topic_for(self, event: Event) -> str:
        return self.alarm_topic if event.kind is EventKind.ALARM else self.topic

    async def publish_raw(self, topic: str, key: bytes | None, value: bytes, headers: list | None = None) -> None:
        await self._publish([(topic, key, value, headers)])

    async def _publish(self, records: list[tuple]) -> None:
        loop = asyncio.get_running_loop()
        publish = Publish(loop.create_future(), len(records))
        if not records:
            return
        self._loop = loop
        self._waiting[publish] = None

        def on_delivery(err: KafkaError | None, msg: Message) -> None:  # poll thread
            if err is not None and err.code() in STUCK:
                self._stuck = err
            self._reports.append((publish, err, msg.topic()))
            if not self._settling_scheduled:
                self._settling_scheduled = True
                try:
                    loop.call_soon_threadsafe(self._settle_reports)
                except RuntimeError:  # that loop has closed: the next publish's loop settles the rest
                    self._settling_scheduled = False

        for topic, key, value, headers in records:
            while True:
                producer = self._producer
                try:
                    producer.produce(topic, value, key, headers=headers, on_delivery=on_delivery)
                    break
                except BufferError:  # local queue full: back-pressure until the broker catches up
                    await asyncio.sleep(0.005)
            if producer is not self._producer:  # replaced meanwhile: the old one will never report
                self._failed(publish, KafkaError(KafkaError._PURGE_QUEUE), topic)
        await publish.future

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
            try:
                self._producer.poll(0.05)
            except KafkaException as exc:  # fatal: this producer will never deliver again
                self._replace_producer(exc.args[0])
            if self._stuck is not None:
                self._replace_producer(self._stuck)

    def _replace_producer(self, err: KafkaError) -> None:
        """Poll thread: carry on with a new producer; what waits on the stuck one fails (retriable)."""
        dead, self._producer = self._producer, Producer(self._config)
        self._stuck = None
        log.error("producer replaced after a fatal error or a record it can no longer deliver; unacknowledged "
                  "publishes fail for a re-send", topic=self.topic, code=err.name(), reason=err.str())
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._fail_waiting, err)
        try:
            dead.purge(in_queue=True, in_flight=True)
        except KafkaException:
            pass

    def _settle_reports(self) -> None:
        """Event loop thread: count in every delivery report received so far."""
        self._settling_scheduled = False  # before draining: a report appended from now on schedules again
        reports, running, acked = self._reports, asyncio.get_running_loop(), collections.Counter()
        while reports:
            publish, err, topic = reports.popleft()
            other = publish.future.get_loop()
            if other is not running:  # published from another event loop (nobody waits if it closed)
                if not other.is_closed():
                    other.call_soon_threadsafe(self._report_one, publish, err, topic)
            elif self._count_in(publish, err, topic):
                acked[topic] += 1
        for topic, count in acked.items():
            PUBLISHED.labels(topic).inc(count)

    def _report_one(self, publish: Publish, err: KafkaError | None, topic: str) -> None:
        if self._count_in(publish, err, topic):
            PUBLISHED.labels(topic).inc()

    def _count_in(self, publish: Publish, err: KafkaError | None, topic: str) -> bool:
        """One record's delivery report against its publish; True when the record was acknowledged."""
        if err is not None:
            self._failed(publish, err, topic)
            return False
        publish.remaining -= 1
        if publish.remaining == 0:
            self._acknowledged(publish)
        return True

    def _acknowledged(self, publish: Publish) -> None:
        self._waiting.pop(publish, None)
        if not publish.future.done():
            PUBLISH_SECONDS.observe(time.perf_counter() - publish.started)
            publish.future.set_result(None)

    def _failed(self, publish: Publish, err: KafkaError, topic: str) -> None:
        """A record of the publish was not acknowledged: the whole publish fails (retriable)."""
        self._waiting.pop(publish, None)
        PUBLISH_FAILURES.labels(topic, err.name()).inc()
        log.error("delivery failed", topic=topic, code=err.name(), reason=err.str(), retriable=True)
        if not publish.future.done():
            publish.future.set_exception(SinkError(
                f"kafka topic {topic}: delivery failed ({err.name()}: {err.str()}); retry the publish",
                retriable=True, retry_after=0.5))

    def _fail_waiting(self, err: KafkaError) -> None:
        """Event loop thread: every publish not yet acknowledged fails with a retriable SinkError, in
        the order they were produced (callers that re-send in that order keep their order per key)."""
        for publish in list(self._waiting):
            self._failed(publish, err, self.topic)

    def _on_error(self, err: KafkaError) -> None:
        log.warning("producer error", topic=self.topic, code=err.name(), reason=err.str(), fatal=err.fatal())


class Publish:
    """One publish call: its future settles once every record is acknowledged, or one fails."""

    __slots__ = ("future", "remaining", "started")

    def __init__(self, future: asyncio.Future, records: int):
        self.future = future
        self.remaining = records
        self.started = time.perf_counter()
        if records == 0:
            future.set_result(None)


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

    Only failures are reported back (librdkafka's delivery.report.only.error): a Python
    callback per acknowledged record made the producer's thread take the GIL from the
    stages tens of thousands of times a second (measured: stage 2's decoding ran 3x slower
    in wall time with it). `confirm()` flushes the producer, which returns once nothing is
    left in flight, and collects the failures reported meanwhile.
    """

    def __init__(self, config: dict, confirm_timeout_s: float | None = None):
        timeout_ms = config.get("message.timeout.ms", 30_000)
        self._confirm_timeout_s = confirm_timeout_s or timeout_ms / 1000 + 10  # past librdkafka's own timeout
        self._errors: list[tuple[str, KafkaError]] = []
        self._producer = Producer({**config, "delivery.report.only.error": True, "on_delivery": self._on_failed,
                                   "error_cb": self._on_error})
        self._produced = 0  # since the last confirm

    def _on_failed(self, err: KafkaError, msg: Message) -> None:  # inside flush/poll (a worker thread)
        self._errors.append((msg.topic(), err))

    @staticmethod
    def _on_error(err: KafkaError) -> None:
        log.warning("producer error", topic="(worker outputs)", code=err.name(), reason=err.str(), fatal=err.fatal())

    async def produce(self, records) -> None:
        if not records:
            return
        produce = self._producer.produce
        for r in records:
            while True:
                try:
                    produce(r.topic, r.value, r.key, r.partition, headers=list(r.headers) if r.headers else None)
                    break
                except BufferError:  # local queue full: wait for the broker
                    await asyncio.to_thread(self._producer.poll, 0.01)
        self._produced += len(records)

    async def confirm(self) -> None:
        """Wait for every acknowledgement of what was produced; SinkError if any record failed."""
        started = time.perf_counter()
        try:
            remaining = await asyncio.to_thread(self._producer.flush, self._confirm_timeout_s)
        except KafkaException as exc:  # fatal producer error: nothing more will be acknowledged
            raise SinkError(f"kafka: producer failed ({exc.args[0].str()}); not committing", retriable=True) from exc
        produced, self._produced = self._produced, 0
        errors, self._errors = self._errors, []
        PUBLISH_SECONDS.observe(time.perf_counter() - started)
        PUBLISHED.labels("(worker outputs)").inc(max(produced - len(errors) - remaining, 0))
        if remaining:
            errors.append(("(worker outputs)", KafkaError(KafkaError._MSG_TIMED_OUT,
                                                          f"{remaining} records still in flight after "
                                                          f"{self._confirm_timeout_s:.0f} s")))
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
        remaining = self._producer.flush(self._confirm_timeout_s)
        if remaining:
            log.error("records not acknowledged at close", topic="(worker outputs)", count=remaining)
