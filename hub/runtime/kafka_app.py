"""The faust app: topics, tables, agents and the tick timer. Wiring only.

    worker = KafkaWorker(rules, KafkaSettings(bootstrap="127.0.0.1:9092"))
    worker.run()            # blocks: a faust worker (what `devsync worker` runs)

Stage 1 agent: consumes <p>.events.raw (key = device stream) in batches, state per stream
in the table `stage1-streams`. Stage 2 agent: consumes <p>.events.normalized (key =
patient id), state per patient in the table `stage2-patients`. Both tables are changelog
backed (compacted topics `<app_id>-<table>-changelog`, created beforehand with the same
partition count as the source topics), so a restarted or rebalanced worker continues
from the last written state. The commit path of one batch, in order:

  1. run the stage on the batch (kafka_stages: pure, `now` from the clock); the touched
     keys are marked dirty,
  2. hand every output to the confluent-kafka idempotent producer (acks=all),
  3. faust acks the batch's input when the agent asks for its next batch.
and the checkpoint, whenever faust commits (its commit timer, every N messages, on an
agent error, at shutdown; `consumer.commit` is wrapped so no commit path skips it):
  4. wait until every output produced so far is acknowledged (a failure stops the
     worker without committing), then write the state of every dirty key to its
     changelog (same partition as the key's source records) and wait for those acks,
  5. commit the acked offsets (faust).
On a rebalance the dirty state is written before the cache is dropped.

A crash anywhere replays input from the last commit against the state of that commit
(never older, possibly newer): records are produced again with the same event ids
(at-least-once), and dedupe by event id (stage 1 dedupe window, stage 2, sinks, readers)
makes the effect exact. docs/kafka-runtime.md walks through each failure.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from collections.abc import Callable

import faust

from hub.errors import SinkError
from hub.logs import get_logger
from hub.rules.models import RuleSet
from hub.runtime.embedded import freeze_start_up
from hub.runtime.kafka_batches import FetchedBatch, ack_range, use_batching_consumer
from hub.runtime.kafka_bindings import BindingReader
from hub.runtime.kafka_fetch import use_fetch_max_wait
from hub.runtime.kafka_gaps import OffsetGuard
from hub.runtime.kafka_metrics import BATCH_SECONDS, CACHED_KEYS, CHECKPOINT_SECONDS, PARKED
from hub.runtime.kafka_producer import RecordSender, producer_config
from hub.runtime.kafka_read import read_latest
from hub.runtime.kafka_settings import KafkaSettings, confluent_config, faust_settings
from hub.runtime.kafka_stages import HandOver, InRecord, OutRecord, StageOneRunner, StageTwoRunner, StateWrite
from hub.runtime.kafka_topics import STAGE1_TABLE, STAGE2_TABLE, TopicNames, ensure_topics, topic_specs

log = get_logger("kafka.worker")
EXIT_CHECKPOINT_FAILED = 75  # EX_TEMPFAIL: restart me (the supervisor's job)


class KafkaWorker:
    def __init__(self, rules: RuleSet, settings: KafkaSettings, *, clock: Callable[[], float] = time.time):
        k = rules.kafka
        self.rules = rules
        self.settings = settings
        self.clock = clock
        self.names = TopicNames.from_rules(k)
        self.client_config = confluent_config(settings, k)
        use_fetch_max_wait(k.fetch_max_wait_s)
        self.app = faust.App(k.app_id, autodiscover=False, **faust_settings(settings, k))
        self.stage1_batches = self.app.channel(maxsize=k.batch_queue)
        self.stage2_batches = self.app.channel(maxsize=k.batch_queue)
        # the alarm lane: alarms have topics and agents of their own, fetched and delivered first,
        # so they never wait behind the vitals' backlog (only behind the batch a stage is running)
        self.stage1_alarm_batches = self.app.channel(maxsize=k.batch_queue)
        self.stage2_alarm_batches = self.app.channel(maxsize=k.batch_queue)
        sinks = {self.names.alarms_raw: self.batch_sink(self.stage1_alarm_batches),
                 self.names.alarms_normalized: self.batch_sink(self.stage2_alarm_batches),
                 self.names.raw: self.batch_sink(self.stage1_batches),
                 self.names.normalized: self.batch_sink(self.stage2_batches)}
        use_batching_consumer(self.app, sinks, first={self.names.alarms_raw, self.names.alarms_normalized})
        for name in sinks:  # subscribed; their records reach the agents as partition batches
            self.app.topics.add(self.stream_topic(name))
        self.stage1_table = self.app.Table(STAGE1_TABLE, partitions=k.partitions, key_type=bytes,
                                           value_type=bytes)
        self.stage2_table = self.app.Table(STAGE2_TABLE, partitions=k.partitions, key_type=bytes,
                                           value_type=bytes)
        handed_over = HandOver()  # stage 1's events for stage 2, when this worker reads them back
        self.stage1 = StageOneRunner(rules, self.names, handed_over)
        self.stage2 = StageTwoRunner(rules, self.names, handed_over)
        self.lock1 = asyncio.Lock()
        self.lock2 = asyncio.Lock()
        self.sender: RecordSender | None = None
        self.guards = {stage: OffsetGuard(self.client_config, k.app_id, stage) for stage in ("stage1", "stage2")}
        self.bindings: BindingReader | None = None
        self.app.agent(self.stage1_batches, name="stage1")(self.stage1_agent)
        self.app.agent(self.stage2_batches, name="stage2")(self.stage2_agent)
        self.app.agent(self.stage1_alarm_batches, name="stage1-alarms")(self.stage1_agent)
        self.app.agent(self.stage2_alarm_batches, name="stage2-alarms")(self.stage2_agent)
        self.app.timer(k.tick_interval_s, name="tick")(self.tick)
        self.app.task(self.start_io)
        self.app.on_partitions_revoked.connect(self.on_revoked)
        self.app.on_rebalance_complete.connect(self.on_rebalanced)

    def stream_topic(self, name: str):
        return self.app.topic(name, key_serializer="raw", value_serializer="raw", partitions=self.rules.kafka.partitions)

    def ensure_topics(self) -> None:
        report = ensure_topics(self.client_config, topic_specs(self.rules.kafka))
        log.info("topics ready", created=len(report.created), existing=len(report.existing))

    def run(self) -> None:
        """Create/check the topics, then run the faust worker until stopped (blocks)."""
        self.ensure_topics()
        worker = faust.Worker(self.app, loglevel="WARNING")
        # faust's terminal spinner sets the root logger to DEBUG so that every message turns it:
        # every debug line of aiokafka's fetcher (one per partition per fetch) was then formatted
        # (measured: 6% of a worker's CPU at 3,000 events/s). devsync's own log has its own level.
        worker.spinner = None
        worker.execute_from_commandline()

    # ---- I/O edges ----
    async def start_io(self) -> None:
        consumer = self.app.consumer
        faust_commit = consumer.commit

        async def commit_after_checkpoint(*args, **kwargs):
            await self.checkpoint()  # 4. state first
            return await faust_commit(*args, **kwargs)  # 5. then offsets

        consumer.commit = commit_after_checkpoint
        self.bindings = BindingReader(self.client_config, self.names.associations, self.stage1.bindings,
                                      self.rules.kafka.fetch_max_wait_s)
        await asyncio.to_thread(self.bindings.start)  # every binding known before the first batch
        self.sender = RecordSender(producer_config(self.client_config, linger_ms=1))  # batches start now
        settle_garbage_collector()
        log.info("worker started", app_id=self.rules.kafka.app_id, partitions=self.rules.kafka.partitions)

    async def ready_sender(self) -> RecordSender:
        while self.sender is None:
            await asyncio.sleep(0.01)
        return self.sender

    # ---- agents ----
    @staticmethod
    def batch_sink(channel):
        async def sink(batch: FetchedBatch) -> None:
            await channel.send(value=batch)  # waits while the agent is batch_queue batches behind

        return sink

    async def stage1_agent(self, stream) -> None:
        async for batch in stream:
            await self.run_batch("stage1", self.stage1, self.stage1_table, self.lock1, batch)

    async def stage2_agent(self, stream) -> None:
        async for batch in stream:
            await self.run_batch("stage2", self.stage2, self.stage2_table, self.lock2, batch)

    def owns(self, batch: FetchedBatch) -> bool:
        """Fetched in the current consumer group generation, no rebalance under way: still this
        worker's partitions (a rebalance that moves partitions starts a new generation)."""
        app = self.app
        return batch.generation == app.consumer_generation_id and not app.rebalancing

    async def run_batch(self, stage: str, runner, table, lock: asyncio.Lock, batch: FetchedBatch) -> None:
        sender = await self.ready_sender()
        guard = self.guards[stage]
        async with lock:
            if not self.owns(batch):  # fetched before a rebalance: the partitions' owners read it again
                return
            if guard.ready_for(batch.parts):  # every offset once, in order (reads skipped ranges directly)
                firsts, records = guard_batch(guard, batch)
            else:  # the group's commit or a skipped range must be read first: blocking I/O
                firsts, records = await asyncio.to_thread(guard_batch, guard, batch)
            started = time.perf_counter()
            outputs = runner.process_batch(records, self.clock(), table.get)  # 1. stages
            await sender.produce(outputs)  # 2. produce (acknowledgements confirmed at the checkpoint)
            consumer = self.app.consumer
            for tp, first in firsts.items():  # 3. the batch's offsets, partition by partition
                ack_range(consumer, tp, first, guard.last.get((tp.topic, tp.partition), first - 1))
            BATCH_SECONDS.labels(stage).observe(time.perf_counter() - started)

    async def tick(self) -> None:
        if self.sender is None or self.app.rebalancing:
            return
        for runner, lock in ((self.stage1, self.lock1), (self.stage2, self.lock2)):
            async with lock:
                await self.sender.produce(runner.tick(self.clock()))
        CACHED_KEYS.labels("stage1").set(len(self.stage1.streams))
        CACHED_KEYS.labels("stage2").set(len(self.stage2.patients))
        PARKED.set(len(self.stage1.stage.parking.parked))

    async def checkpoint(self) -> None:
        """4a. confirm every output, 4b. write every dirty key's state and confirm it.

        A failed output stops the worker (no commit): the next one replays from the last commit."""
        if self.sender is None:
            return
        async with self.lock1, self.lock2:
            try:
                started = time.perf_counter()
                await self.sender.confirm()
                confirmed = time.perf_counter()
                writes1, writes2 = self.stage1.take_state_writes(), self.stage2.take_state_writes()
                serialised = time.perf_counter()
                await self.write_states(self.stage1_table, writes1)
                await self.write_states(self.stage2_table, writes2)
                CHECKPOINT_SECONDS.observe(time.perf_counter() - started)
                log.debug("checkpoint", outputs_s=round(confirmed - started, 3),
                          serialise_s=round(serialised - confirmed, 3),
                          write_s=round(time.perf_counter() - serialised, 3), keys=len(writes1) + len(writes2),
                          bytes=sum(len(w.value) for w in writes1 + writes2))
            except SinkError as exc:
                log.error("checkpoint failed: stopping without commit", reason=str(exc))
                logging.shutdown()
                os._exit(EXIT_CHECKPOINT_FAILED)

    async def write_states(self, table, writes: list[StateWrite]) -> None:
        """Table store and changelog, in the partition of the key's source record, produced by
        the same idempotent producer as the outputs and acknowledged before offsets are committed."""
        if not writes:
            return
        topic = table.changelog_topic.get_topic_name()
        await self.sender.send_all([OutRecord(topic, w.key, w.value, partition=w.partition) for w in writes])
        store = table.data
        key_partition = getattr(store, "_key_partition", None)  # memory store: drop keys of revoked partitions
        for w in writes:
            store[w.key] = w.value
            if key_partition is not None:
                key_partition[w.key] = w.partition

    async def on_rebalanced(self, app, **kwargs) -> None:
        assignment = app.consumer.assignment()
        names = self.names
        stage1 = sorted({tp.partition for tp in assignment if tp.topic in (names.raw, names.alarms_raw)})
        stage2 = sorted({tp.partition for tp in assignment if tp.topic in (names.normalized, names.alarms_normalized)})
        async with self.lock1, self.lock2:
            await self.reload_table(self.stage1_table, stage1)
            await self.reload_table(self.stage2_table, stage2)
        log.info("rebalance complete", raw_partitions=",".join(map(str, stage1)) or "none")

    async def reload_table(self, table, partitions: list[int]) -> None:
        """Re-read the assigned changelog partitions to their end and take the latest value per key.

        Measured here: after a kill -9, faust's table recovery sometimes left a key at an older
        value than the last checkpoint wrote (the offsets committed with that checkpoint then
        skip input the older state never saw). Reading the changelog directly makes the state
        exactly that of the last checkpoint."""
        if not partitions:
            return
        topic = table.changelog_topic.get_topic_name()
        latest = await asyncio.to_thread(read_latest, self.client_config, topic, partitions)
        store = table.data
        key_partition = getattr(store, "_key_partition", None)
        for key, (partition, value) in latest.items():
            store[key] = value
            if key_partition is not None:
                key_partition[key] = partition
        log.info("table reloaded from changelog", table=table.name, keys=len(latest), partitions=len(partitions))

    async def on_revoked(self, app, revoked, **kwargs) -> None:
        """Partitions move: drop cached state; whoever gets a partition reloads it from the table."""
        await self.checkpoint()
        async with self.lock1, self.lock2:
            self.stage1.forget()
            self.stage2.forget()
            for guard in self.guards.values():
                guard.forget()
        log.info("partitions revoked: state cache dropped", partitions=len(revoked))


GC_YOUNG_THRESHOLD = 20_000  # allocations between young collections (CPython's default: 700)


def settle_garbage_collector() -> None:
    """Keep the collector from eating the stages' time.

    Measured here at 10,000 events/s: with CPython's defaults the collector ran about 150 times a
    second, and its full collections walked faust's, aiokafka's and the stages' objects: 3.2 s of a
    worker's CPU in 16 s, charged to whatever allocated next (the decoding of events). Start-up
    objects are frozen out of full collections, and young collections run less often (batches
    allocate and free tens of thousands of short-lived objects at a time)."""
    freeze_start_up()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def guard_batch(guard: OffsetGuard, batch: FetchedBatch) -> tuple[dict, list[InRecord]]:
    """(first offset each partition's part covers, the records with skips filled in and repeats
    dropped); may block (see OffsetGuard.ready_for)."""
    firsts = {tp: guard.next_offset(tp.topic, tp.partition) for tp in batch.parts}
    return firsts, guard.check(batch.records)


