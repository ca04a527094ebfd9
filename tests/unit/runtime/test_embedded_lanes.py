"""The embedded runtime's alarm lane and side-by-side sink flushes (hub/runtime/embedded.py)."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest

from hub.errors import SinkError
from hub.events import EventKind
from hub.rules.load import load_rules
from hub.runtime.embedded import EmbeddedRuntime
from hub.testing.factories import alarm_event, association_event, numeric_event

ROOT = Path(__file__).resolve().parents[3]
T0 = 1_700_000_000.0


class RecordingSink:
    """Keeps what it was given, in order; flush() can be slowed down or made to fail."""

    def __init__(self, name: str, log: list, flush_s: float = 0.0, error: Exception | None = None):
        self.name, self.log, self.flush_s, self.error = name, log, flush_s, error
        self.added = []

    def add(self, event) -> None:
        self.added.append(event)

    async def flush(self) -> None:
        await asyncio.sleep(self.flush_s)
        self.log.append(self.name)
        if self.error is not None:
            raise self.error


@pytest.fixture(scope="module")
def rules():
    return load_rules(ROOT / "rules")


def bound_runtime(rules, sinks) -> EmbeddedRuntime:
    """A runtime whose clock starts an hour past the readings and moves 10 s per batch (so no window
    holds them past the batch's tick), with MON-01's bed bound to a patient."""
    batches = itertools.count()
    runtime = EmbeddedRuntime(rules, sinks=sinks, clock=lambda: T0 + 3600 + 10 * next(batches))
    location = next(d.location for d in rules.devices if d.id == "MON-01")
    runtime.process_batch([association_event(location, "P-1", t=T0 - 60)], T0)
    return runtime


async def run_until_idle(runtime: EmbeddedRuntime) -> None:
    task = asyncio.create_task(runtime.run())
    await runtime.stop()
    await asyncio.wait_for(task, 30)
    await runtime.finish()


def test_an_alarm_queued_behind_a_backlog_of_vitals_is_handled_first(rules):
    async def scenario():
        sink = RecordingSink("ehr", [])
        runtime = bound_runtime(rules, [sink])
        for i in range(3 * runtime.batch_size):
            await runtime.emit(numeric_event("MON-01", seq=i, t=T0 + i))
        await runtime.emit(alarm_event("MON-01", t=T0 + 1))
        await run_until_idle(runtime)
        kinds = [event.kind for event in sink.added]
        assert EventKind.ALARM in kinds and EventKind.NUMERIC in kinds
        assert kinds.index(EventKind.ALARM) < kinds.index(EventKind.NUMERIC), "the alarm waited behind vitals"
        assert kinds.count(EventKind.ALARM) == 1

    asyncio.run(scenario())


def test_alarms_in_their_lane_change_nothing_in_the_vitals_charted(rules):
    async def charted(with_alarms: bool):
        sink = RecordingSink("ehr", [])
        runtime = bound_runtime(rules, [sink])
        for i in range(500):
            await runtime.emit(numeric_event("MON-01", seq=i, t=T0 + i, value=60 + i % 50))
            if with_alarms and i % 100 == 0:
                await runtime.emit(alarm_event("MON-01", seq=i, t=T0 + i))
        await run_until_idle(runtime)
        vitals = [(e.event_id, e.device_time, e.value) for e in sink.added if e.kind is EventKind.NUMERIC]
        return vitals, sum(e.kind is EventKind.ALARM for e in sink.added)

    async def scenario():
        alone, no_alarms = await charted(with_alarms=False)
        mixed, alarms = await charted(with_alarms=True)
        assert (no_alarms, alarms) == (0, 5)
        assert len(alone) > 100 and mixed == alone

    asyncio.run(scenario())


def test_sinks_flush_side_by_side_so_a_slow_ehr_does_not_hold_the_alarm_manager(rules):
    async def scenario():
        flushed: list[str] = []
        runtime = bound_runtime(rules, [RecordingSink("slow-ehr", flushed, flush_s=0.5),
                                        RecordingSink("alarm-manager", flushed)])
        await runtime.checkpoint()
        assert flushed == ["alarm-manager", "slow-ehr"]

    asyncio.run(scenario())


def test_a_failing_flush_is_raised_after_the_other_sinks_have_flushed(rules):
    async def scenario():
        flushed: list[str] = []
        failure = SinkError("EHR refused the connection", retriable=True)
        runtime = bound_runtime(rules, [RecordingSink("ehr", flushed, error=failure),
                                        RecordingSink("alarm-manager", flushed, flush_s=0.2)])
        with pytest.raises(SinkError, match="EHR refused"):
            await runtime.checkpoint()
        assert flushed == ["ehr", "alarm-manager"]

    asyncio.run(scenario())
