"""Kafka upstream: confluent-kafka idempotent producer, acks=all, key = event.stream.

The raw topic (rules: edge.kafka_topic_prefix + 'events.raw') is created explicitly with
AdminClient before the first produce, because a broker that auto-creates topics picks its
own partition count. A row counts as delivered only when its delivery report arrives
without error: with acks=all that means every in-sync replica has it.
"""

from __future__ import annotations

import asyncio
import threading

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from edge_buffer.errors import UpstreamError
from edge_buffer.upstream import OutgoingMessage, SendResult
from hub.logs import get_logger
from hub.rules.edge import EdgeRules

log = get_logger("edge.upstream.kafka")

# Errors no retry can fix: the message itself is unacceptable to this topic.
PERMANENT = frozenset({
    KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.INVALID_MSG_SIZE, KafkaError.INVALID_MSG, KafkaError.INVALID_RECORD,
    KafkaError.RECORD_LIST_TOO_LARGE,
})


def producer_config(bootstrap: str, settings: EdgeRules) -> dict:
    timeout_ms = int(settings.ack_timeout_s * 1000)
    return {
        "bootstrap.servers": bootstrap,
        "client.id": f"devsync-edge-{settings.gateway_id}",
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "batch.num.messages": 10000,
        "message.timeout.ms": timeout_ms,
        "socket.connection.setup.timeout.ms": min(timeout_ms, 10000),
        "reconnect.backoff.max.ms": int(settings.backoff_max_s * 1000),
        "log_level": 2,  # librdkafka's own stderr lines off; errors come through error_cb and delivery reports
    }


class KafkaUpstream:
    kind = "kafka"

    def __init__(self, bootstrap: str, settings: EdgeRules, extra_config: dict | None = None):
        self.bootstrap = bootstrap
        self.settings = settings
        self.topic = settings.kafka_topic
        self.target = f"kafka://{bootstrap}/{self.topic}"
        self.extra = {**settings.kafka_client_config, **(extra_config or {})}
        self._producer: Producer | None = None
        self._fatal = threading.Event()

    # ---------- connect ----------
    async def connect(self) -> None:
        await asyncio.to_thread(self._ensure_topic)
        if self._producer is None:
            self._fatal.clear()
            self._producer = Producer({**producer_config(self.bootstrap, self.settings), **self.extra,
                                       "error_cb": self._on_error})

    def _ensure_topic(self) -> None:
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 2, **self.extra})
        s = self.settings
        try:
            metadata = admin.list_topics(timeout=min(s.ack_timeout_s, 10.0))
        except KafkaException as exc:
            raise UpstreamError(f"{self.target}: broker unreachable ({exc.args[0]})") from exc
        if self.topic in metadata.topics and not metadata.topics[self.topic].error:
            return
        futures = admin.create_topics([NewTopic(self.topic, s.kafka_partitions, s.kafka_replication_factor)])
        try:
            futures[self.topic].result(timeout=min(s.ack_timeout_s, 10.0))
            log.info("raw topic created", topic=self.topic, partitions=s.kafka_partitions)
        except KafkaException as exc:
            err = exc.args[0]
            if err.code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise UpstreamError(f"{self.target}: cannot create topic ({err.str()})") from exc
        except Exception as exc:  # timeout of the future
            raise UpstreamError(f"{self.target}: topic creation did not answer ({exc})") from exc

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            self._fatal.set()
            log.error("kafka producer fatal error", target=self.target, error=err.str())
        else:  # connection trouble: the forwarder logs the outage once, per batch
            log.debug("kafka client error", target=self.target, error=err.str())

    # ---------- send ----------
    async def send(self, batch: list[OutgoingMessage]) -> SendResult:
        if self._producer is None:
            raise UpstreamError(f"{self.target}: send before connect")
        return await asyncio.to_thread(self._send_blocking, self._producer, batch)

    def _send_blocking(self, producer: Producer, batch: list[OutgoingMessage]) -> SendResult:
        result = SendResult()
        errors: list[str] = []

        def report(row_id: int):
            def on_delivery(err, _msg) -> None:
                if err is None:
                    result.acked.append(row_id)
                elif err.code() in PERMANENT:
                    result.rejected.append((row_id, f"kafka: {err.str()}"))
                else:
                    errors.append(err.str())
            return on_delivery

        for msg in batch:
            while True:
                try:
                    producer.produce(self.topic, msg.value, msg.key.encode(), on_delivery=report(msg.row_id))
                    break
                except BufferError:  # local queue full: serve delivery reports, then retry
                    producer.poll(0.05)
                except KafkaException as exc:  # this message can never be produced (e.g. too large)
                    err = exc.args[0]
                    if err.code() not in PERMANENT:
                        raise UpstreamError(f"{self.target}: produce failed ({err.str()})") from exc
                    result.rejected.append((msg.row_id, f"kafka: {err.str()}"))
                    break
        # message.timeout.ms bounds every message, so after this each one has an outcome.
        remaining = producer.flush(self.settings.ack_timeout_s + 5.0)
        if remaining:
            errors.append(f"{remaining} message(s) without a delivery report")
        if self._fatal.is_set():
            errors.append("fatal producer error")
        if errors:
            missing = len(batch) - len(result.acked) - len(result.rejected)
            result.error = f"{self.target}: {missing} not acknowledged ({errors[0]})"
        return result

    async def close(self) -> None:
        """After a failed batch: drop the producer (queued copies purged). The next connect makes a new
        one with a new producer id, so a fenced or epoch-bumped idempotent session never blocks replay."""
        producer, self._producer = self._producer, None
        if producer is not None:
            await asyncio.to_thread(_discard, producer)


def _discard(producer: Producer) -> None:
    try:
        producer.purge(in_queue=True, in_flight=False)
    finally:
        producer.flush(1.0)
