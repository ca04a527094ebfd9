"""`devsync deliver`: the sinks of the Kafka runtime.

The workers write resolved observations to `<prefix>.observations`. This loop reads that topic
as the consumer group `<app_id>-deliver` and hands every observation to the sinks the rules
configure (HL7 v2 over MLLP, FHIR, files): the same sinks, charting policies and ledger as the
embedded runtime. Commit path (docs/delivery-guarantees.md), per batch of records:

  1. add every observation to every sink;
  2. flush the sinks side by side, write the batch's dead letters, flush the store
     (retried with input paused while an EHR or the database is away);
  3. commit the batch's offsets.

A crash or a rebalance between 1 and 3 replays the batch; the sinks' ledger (by event id and
sink) answers the replay as duplicates, so nothing is charted twice. Run one deliverer, or
several on one shared ledger database (PostgreSQL): they share the topic's partitions. A record
that is not a canonical event goes to the dead-letter table (sink `deliver`, step `decode`)
with the reason, and the stream carries on.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

from confluent_kafka import KafkaException, TopicPartition

from hub.events import Event
from hub.logs import get_logger
from hub.runtime.checkpoint import flush_side_by_side, retry_until_done, write_fates

log = get_logger("deliver")
REASON_LIMIT = 500  # characters of a decode error kept in the dead letter


@dataclass
class DeliverCounts:
    records: int = 0
    observations: int = 0
    undecodable: int = 0
    commits: int = 0
    refused_commits: int = 0


@dataclass
class Deliverer:
    consumer: object  # confluent_kafka.Consumer, subscribed by run()
    topic: str
    sinks: Sequence
    store: object
    batch_max: int = 2000
    poll_s: float = 0.2
    counts: DeliverCounts = field(default_factory=DeliverCounts)
    _fates: deque[Callable[[], object]] = field(default_factory=deque)

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set; the batch in hand is delivered and committed first."""
        self.consumer.subscribe([self.topic])
        while not stop.is_set():
            records = await asyncio.to_thread(self.consumer.consume, self.batch_max, self.poll_s)
            await self.deliver(records)

    async def deliver(self, records: Sequence) -> None:
        offsets = self.take(records)
        if offsets:
            await retry_until_done(self.checkpoint, log)
            await asyncio.to_thread(self.commit, offsets)

    def take(self, records: Sequence) -> list[TopicPartition]:
        """Step 1: every record to the sinks (or, undecodable, to a dead letter); the offsets to commit."""
        next_offsets: dict[tuple[str, int], int] = {}
        for record in records:
            if record.error() is not None:
                log.warning("consumer error", error=str(record.error()))
                continue
            next_offsets[(record.topic(), record.partition())] = record.offset() + 1
            self.counts.records += 1
            try:
                event = Event.from_json(record.value())
            except (ValueError, TypeError) as exc:
                self._dead_letter(record, exc)
                continue
            self.counts.observations += 1
            for sink in self.sinks:
                sink.add(event)
        return [TopicPartition(topic, partition, offset) for (topic, partition), offset in next_offsets.items()]

    def _dead_letter(self, record, exc: Exception) -> None:
        self.counts.undecodable += 1
        where = f"{record.topic()}[{record.partition()}]@{record.offset()}"
        reason = f"{where} is not a canonical event: {type(exc).__name__}: {str(exc)[:REASON_LIMIT]}"
        log.error("undecodable observation record: dead-lettered", record=where, error=type(exc).__name__)
        raw = record.value() or b""
        letter = {"event_id": (record.key() or where.encode()).decode("utf-8", "replace")[:64], "sink": "deliver",
                  "step": "decode", "reason": reason, "event": raw.decode("utf-8", "replace"), "payload": None}
        self._fates.append(partial(self.store.record_dead_letters, [letter]))

    async def checkpoint(self) -> None:
        """Step 2: sinks side by side, then the dead letters (each once), then the store."""
        await flush_side_by_side(self.sinks)
        write_fates(self._fates)
        self.store.flush()

    def commit(self, offsets: list[TopicPartition]) -> None:
        """Step 3. A refused commit (the partitions moved to another deliverer in a rebalance) is
        logged: the new owner replays from the last commit and the ledger answers duplicates."""
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
            self.counts.commits += 1
        except KafkaException as exc:
            self.counts.refused_commits += 1
            log.warning("offset commit refused: the partitions' new owner replays them", error=str(exc)[:300])
