"""faust's consumer, delivering each fetched partition batch to a stage as one event.

faust-streaming hands records to agents one by one: per record its fetch loop races the
delivery against flow suspension (two asyncio tasks), the conductor takes a lock, the topic
queues an Event, the stream's take buffer runs a processor coroutine and acks it. Measured
here with both stages on one worker: about 0.45 ms of CPU per event, 2,000 events/s, of
which the stages were a fifth. This consumer keeps everything else of faust (consumer group,
assignment and rebalance callbacks, fetching in its consumer thread, offset tracking,
commits, timers, tables and their changelogs) and replaces only that per-record path: the
fetch loop puts what one fetch brought for a stage (records of several partitions), as one
`FetchedBatch`, on the stage's in-memory faust channel, and the stage agent acks each
partition's offset range in one step after it processed the batch (`ack_range`). Records of every other topic (table changelogs
during recovery) still take faust's own path.

Offsets: an acked range covers every offset from the first not yet processed to the last
record of the batch, so offsets that hold no record (transaction markers) are acked with
their neighbours, and faust commits the contiguous acked prefix as before
(`Consumer._new_offset`). The checkpoint that precedes every commit is unchanged
(kafka_app.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer
from faust.types import TP
from faust.types.tuples import ack_lock

from hub.runtime.kafka_stages import InRecord


@dataclass(frozen=True)
class FetchedBatch:
    """What one fetch brought for one stage: records per partition, each partition's in offset order."""

    parts: dict[TP, list[InRecord]]
    generation: int  # the consumer group generation they were fetched in

    @property
    def records(self) -> list[InRecord]:
        return [record for records in self.parts.values() for record in records]


BatchSink = Callable[[FetchedBatch], Awaitable[None]]


class BatchingConsumer(AIOKafkaConsumer):
    """faust's aiokafka consumer whose fetch loop hands whole partition batches to `batch_sinks`."""

    batch_sinks: dict[str, BatchSink] = {}  # topic name -> sink (set per worker by use_batching_consumer)
    first_topics: frozenset[str] = frozenset()  # the alarm lane: fetched and fed before the others
    first_sinks: frozenset[BatchSink] = frozenset()

    async def _drain_messages(self, fetcher) -> None:  # pragma: no cover - exercised by the Kafka tests
        callback = self.callback
        sinks = self.batch_sinks
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        commit_every = self._commit_every
        # The other stages' batches are handed over in the background, one at a time per stage: while
        # one waits for its agent (its channel is full), only the first topics are fetched, so the
        # alarm lane is never held up by the fetch loop waiting on a busy stage.
        handing_over: dict[BatchSink, asyncio.Future] = {}
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                busy = False
                for sink, handover in list(handing_over.items()):
                    if handover.done():
                        del handing_over[sink]
                        handover.result()  # a failed hand-over stops the worker, as faust's own path does
                    else:
                        busy = True
                if busy:
                    records, active = await self._take_first_topics(timeout=0.05), None
                else:
                    first = await self._take_first_topics(timeout=0)
                    records, active = await self._wait_next_records(timeout=0 if first else 1.0)
                    if first:
                        records = {**first, **(records or {})}
                await asyncio.sleep(0)
                if not records or self.should_stop:
                    continue
                generation = self.app.consumer_generation_id
                batches: dict[BatchSink, dict[TP, list[InRecord]]] = {}
                for tp, fetched in records.items():
                    if active is not None and tp not in active and tp not in self._buffered_partitions:
                        continue
                    sink = sinks.get(tp.topic)
                    if sink is None:  # not a stage's topic (a changelog in recovery): faust's own path
                        for record in fetched:
                            await callback(self._to_message(tp, record))
                            self._read_offset[tp] = record.offset
                        continue
                    batches.setdefault(sink, {})[tp] = [InRecord(r.key, r.value, r.topic, r.partition, r.offset)
                                                        for r in fetched]
                for sink in sorted(batches, key=lambda s: s not in self.first_sinks):  # the alarm lane first
                    if not self.flow_active or self.app.consumer_generation_id != generation:
                        break  # a rebalance began: what was fetched is read again by the partition's owner
                    parts = batches[sink]
                    if sink in self.first_sinks:
                        await sink(FetchedBatch(parts, generation))
                    else:
                        handing_over[sink] = asyncio.ensure_future(sink(FetchedBatch(parts, generation)))
                    for tp, part in parts.items():
                        self._read_offset[tp] = part[-1].offset
                if commit_every is not None and self._n_acked >= commit_every:
                    self._n_acked = 0
                    await self.commit()
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise
        finally:
            for handover in handing_over.values():
                handover.cancel()

    async def _take_first_topics(self, timeout: float) -> dict:
        """What the fetcher holds for the first topics (the alarm lane), waiting at most `timeout`.

        aiokafka hands out buffered records partition by partition in the order they arrived, up to
        max_poll_records, and keeps a partition first until it is drained: under a backlog, records
        of a partition fetched later waited behind every earlier partition's buffer (measured at
        10,000 events/s offered: alarms 0.56 s p50 at the worker's output). Asking for the first
        topics' partitions alone, before the others, takes them out of turn."""
        if not self.first_topics or not self.flow_active:
            return {}
        tps = {tp for tp in self._get_active_partitions() if tp.topic in self.first_topics}
        if not tps:
            return {}
        return await self._getmany(active_partitions=tps, timeout=timeout) or {}


def ack_range(consumer, tp: TP, first: int, last: int) -> int:
    """Mark offsets first..last of tp processed, as faust's per-message ack would; returns how many."""
    with ack_lock:
        committed = consumer._committed_offset[tp]
        start = first if committed is None else max(first, committed)
        if start > last:
            return 0
        index = consumer._acked_index[tp]
        fresh = [offset for offset in range(start, last + 1) if offset not in index]
        index.update(fresh)
        consumer._acked[tp].extend(fresh)
        consumer._n_acked += len(fresh)
        return len(fresh)


def use_batching_consumer(app, sinks: dict[str, BatchSink], first: set[str] = frozenset()) -> None:
    """Make `app` build a BatchingConsumer that sends the given topics' batches to their sinks,
    those of the `first` topics before the others of the same fetch."""
    consumer_class = type("WorkerConsumer", (BatchingConsumer,),
                          {"batch_sinks": dict(sinks), "first_topics": frozenset(first),
                           "first_sinks": frozenset(sinks[t] for t in first)})
    app.transport.Consumer = consumer_class
