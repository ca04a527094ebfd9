"""The embedded runtime: the two stages wired in-process with asyncio (the default for the
demo and laptops). State and audit go to the store (SQLite by default, through SQLAlchemy).

    runtime = EmbeddedRuntime(rules, store=open_store(url), sinks=build_sinks(rules, store))
    task = asyncio.create_task(runtime.run())
    await runtime.emit(event)          # connectors: returns once queued (bounded: back-pressure)
    await runtime.stop()               # drain: every held event gets a fate, sinks flushed

One loop takes batches from the input queues, runs stage 1 per stream and stage 2 per
patient, hands observations to the sinks and decisions to the store, then flushes (the
checkpoint: sinks first, all at once, then the store). Alarms have a lane of their own: emit()
queues them apart from the other events, and the loop takes waiting alarms as a batch of their
own before any other event, so an alarm never waits behind a backlog of vitals (a code-blue
burst), and no sink's flush waits for another sink's ACKs. A timer tick releases reorder
windows, closes resolution buckets and expires parked events. When the checkpoint fails because a sink's peer
(retriable SinkError) or the database (OperationalError) is away, the loop logs the error,
takes no new input (emit() blocks once the bounded queue is full) and retries the checkpoint
until it succeeds: the sinks and the store keep everything they were given. Nothing inside a
batch writes to the database directly: the pipeline's fates (parked, released, dead-lettered)
wait for the checkpoint, so a database that goes away mid-batch pauses the loop, never ends it.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections import deque
from collections.abc import Callable, Sequence
from functools import partial

from hub.events import Event, EventKind
from hub.logs import get_logger
from hub.pipeline import Stage1, Stage1Output, Stage2, StreamState
from hub.resolve.resolver import PatientResolver, Resolution
from hub.rules.models import RuleSet
from hub.runtime.checkpoint import flush_side_by_side, retry_until_done, write_fates
from hub.runtime.summary import Summary

log = get_logger("runtime")
_frozen = False


def freeze_start_up() -> None:
    """gc.freeze(), once per process: what start-up built (modules, rules, schemas) stays out of
    every full collection of the long-running loop."""
    global _frozen
    if not _frozen:
        gc.freeze()
        _frozen = True


class EmbeddedRuntime:
    def __init__(self, rules: RuleSet, *, store=None, sinks: Sequence = (), clock: Callable[[], float] = time.time,
                 tick_s: float = 0.1, batch_size: int = 2000, record_copies: bool = True,
                 on_observation: Callable[[Event], None] | None = None):
        self.rules = rules
        self.store = store
        self.sinks = list(sinks)
        self.clock = clock
        self.tick_s = tick_s
        self.batch_size = batch_size
        self.record_copies = record_copies and store is not None
        self.on_observation = on_observation
        self.stage1 = Stage1(rules)
        self.stage2 = Stage2(rules)
        self.streams: dict[str, StreamState] = {}
        self.patients: dict[str, PatientResolver] = {}
        self.queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=rules.runtime.queue_size)
        self.alarm_queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=rules.runtime.queue_size)
        self._input = asyncio.Event()  # set when either queue has something
        self._fates: deque[Callable[[], object]] = deque()  # store writes of parked/released/DLQ, at the checkpoint
        self.summary = Summary(budgets={dc: p.latency_budget_s for dc, p in rules.sync_profiles.items()})
        self._stopping = asyncio.Event()
        self._last_tick = 0.0

    # ---- input ----
    async def emit(self, event: Event) -> None:
        """Queue one event (blocks while its lane is full); alarms go to the alarm lane."""
        await (self.alarm_queue if event.kind is EventKind.ALARM else self.queue).put(event)
        self._input.set()

    # ---- processing (synchronous core, also used directly by benchmarks and tests) ----
    def process_batch(self, events: Sequence[Event], now: float) -> None:
        out = Stage1Output()
        streams, stage1 = self.streams, self.stage1
        self.summary.count_in(events)
        for event in events:
            state = streams.get(event.stream)
            if state is None:
                state = streams[event.stream] = stage1.new_stream_state(event)
            if self.record_copies:
                self.store.record_event(event, "raw", now=now)
            stage1.process(state, event, now, out)
        self.handle_stage1(out, now)
        if now - self._last_tick >= self.tick_s:
            self.tick(now)

    def tick(self, now: float) -> None:
        self._last_tick = now
        for state in self.streams.values():
            if state.holding:
                self.handle_stage1(self.stage1.tick(state, now), now)
        self.handle_stage1(self.stage1.expire_parked(now), now)
        for state in self.patients.values():
            if state.bucket_close:
                self.handle_resolutions(self.stage2.tick(state, now), now)
        self.summary.parked_now = len(self.stage1.parking.parked)

    def handle_stage1(self, out: Stage1Output, now: float) -> None:
        self.summary.count_stage1(out)
        store = self.store
        if store is not None:
            fates = self._fates
            fates.extend(partial(store.record_parked, event, reason, now=now) for event, reason in out.parked)
            fates.extend(partial(store.release_parked, event_id, now=now) for event_id in out.unparked_ids)
            fates.extend(partial(store.record_dlq, event, sink="pipeline", step="normalise", reason=reason)
                         for event, reason in out.dlq)
            fates.extend(partial(store.record_dlq, event, sink="pipeline", step="associate", reason=reason)
                         for event, reason in out.expired)
            for event in out.associations:
                store.record_event(event, "association", now=now)
        for event, reason in out.dlq + out.expired:
            log.warning("dead-lettered", event_id=event.event_id, device=event.device.id, reason=reason)
        for event in out.ready:
            if self.record_copies:
                store.record_event(event, "normalised", now=now)
            patient_id = event.patient.patient_id
            state = self.patients.get(patient_id)
            if state is None:
                state = self.patients[patient_id] = self.stage2.new_patient_state(patient_id)
            self.handle_resolutions(self.stage2.process(state, event, now), now)

    def handle_resolutions(self, resolutions: list[Resolution], now: float) -> None:
        for res in resolutions:
            self.summary.count_decision(res)
            if self.store is not None:
                self.store.record_decision(res.audit, now=now)
            if res.observation is not None:
                self.summary.count_out(res.observation, now, timed=not res.reannounce)
                for sink in self.sinks:
                    sink.add(res.observation)
                if self.on_observation is not None:
                    self.on_observation(res.observation)

    async def checkpoint(self) -> None:
        """Numbered steps (docs/delivery-guarantees.md): 1. flush sinks, 2. write the pipeline's fates
        (each taken off only once written, so a retry writes none twice) and flush the store.

        The sinks flush side by side (the alarm manager does not wait for the EHR's ACKs); the
        first failure is raised once every flush has ended, so no flush is left half-way."""
        await flush_side_by_side(self.sinks)
        write_fates(self._fates)
        if self.store is not None:
            self.store.flush()
        self.summary.publish_metrics()

    # ---- the loop ----
    async def run(self) -> None:
        freeze_start_up()
        while not (self._stopping.is_set() and self.queue.empty() and self.alarm_queue.empty()):
            batch = await self._take_batch()
            self.process_batch(batch, self.clock())
            await self.checkpoint_until_done()

    async def checkpoint_until_done(self) -> None:
        """checkpoint(), retried while the failure is temporary (input waits meanwhile)."""
        await retry_until_done(self.checkpoint, log)

    async def _take_batch(self) -> list[Event]:
        """Waiting alarms alone if there are any, else up to batch_size other events; [] after tick_s idle."""
        if self.queue.empty() and self.alarm_queue.empty():
            self._input.clear()
            try:
                await asyncio.wait_for(self._input.wait(), timeout=self.tick_s)
            except TimeoutError:
                return []
        lane = self.alarm_queue if not self.alarm_queue.empty() else self.queue
        batch: list[Event] = []
        while len(batch) < self.batch_size and not lane.empty():
            batch.append(lane.get_nowait())
        return batch

    async def stop(self) -> None:
        """Stop after the queue is empty, then give every held event its fate."""
        self._stopping.set()

    def drain(self, now: float) -> None:
        for state in self.streams.values():
            self.handle_stage1(self.stage1.drain(state, now), now)
        for state in self.patients.values():
            self.handle_resolutions(self.stage2.drain(state), now)
        self.summary.parked_now = len(self.stage1.parking.parked)

    async def finish(self) -> None:
        """Drain held events and checkpoint one last time (after run() returned), retried like run()'s."""
        self.drain(self.clock())
        await self.checkpoint_until_done()

