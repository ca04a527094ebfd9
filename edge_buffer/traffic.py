"""Synthetic device traffic for the gateway: a Connector that emits canonical events for a
device mix at given rates (steady) or as fast as the buffer commits (burst).

Used by `devsync edge --simulate` (soak and sizing checks on a real gateway), by the
edge benchmark and by the edge tests. It acknowledges an event (counts it, writes its id
to `ack_log`) only after `await emit(event)` returned, like a real connector.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from connectors.base import Emit
from edge_buffer.errors import QueueFullError
from hub.events import (
    Alarm,
    AlarmPriority,
    AlarmState,
    DataClass,
    Device,
    Event,
    EventKind,
    Provenance,
    Waveform,
    make_event_id,
)
from hub.logs import get_logger

log = get_logger("edge.traffic")

KIND = {DataClass.ALARM: EventKind.ALARM, DataClass.WAVEFORM: EventKind.WAVEFORM, DataClass.STATUS: EventKind.DEVICE_STATUS}
METRICS = [("heart-rate", 147842, "/min", 72.0), ("spo2", 150456, "%", 97.0), ("resp-rate", 151562, "/min", 16.0),
           ("nibp-sys", 150021, "mm[Hg]", 120.0), ("temp", 150364, "Cel", 37.0), ("infusion-rate", 157784, "mL/h", 25.0)]


@dataclass(frozen=True)
class StreamSpec:
    device: Device
    data_class: DataClass
    rate_per_s: float
    location: str | None = None

    @property
    def stream(self) -> str:
        return f"{self.device.id}/{self.data_class.value}"


def build_event(spec: StreamSpec, seq: int, now: float, run_id: str = "") -> Event:
    """One plausible event of the stream's data class (pure: time and seq come in)."""
    cls = spec.data_class
    metric, mdc, unit, base = METRICS[seq % len(METRICS)]
    fields: dict = {}
    if cls is DataClass.ALARM:
        fields["alarm"] = Alarm(condition="MDC_EVT_HI", text="HR HIGH", priority=AlarmPriority.HIGH,
                                state=AlarmState.ACTIVE, alarm_id=f"{spec.device.id}-A{seq}", source_metric=metric)
    elif cls is DataClass.WAVEFORM:
        fields["waveform"] = Waveform(sample_rate_hz=250.0, start_time=now - 1.0, leads=("MDC_ECG_LEAD_II",),
                                      samples=(tuple((seq * 7 + i * 13) % 400 - 200 for i in range(250)),), factor=5.0)
    elif cls is DataClass.STATUS:
        fields["status"] = "operational"
    else:
        fields.update(code_sent=str(mdc), code_system_sent="MDC", metric=metric, mdc_code=mdc,
                      value_sent=base + (seq % 7), unit_sent=unit)
    return Event(
        event_id=make_event_id(spec.stream, seq, run_id), kind=KIND.get(cls, EventKind.NUMERIC), data_class=cls,
        device=spec.device, stream=spec.stream, seq=seq, device_time=now, received_time=now, location=spec.location,
        provenance=Provenance(connector="synthetic", raw_ref=f"SYN-{run_id}-{seq}"), **fields,
    )


class SyntheticTraffic:
    name = "synthetic"

    def __init__(self, streams: list[StreamSpec], *, rate_scale: float = 1.0, burst_concurrency: int = 0,
                 max_events: int | None = None, run_id: str = "", ack_log: TextIO | None = None,
                 tick_s: float = 0.1, clock: Callable[[], float] = time.time):
        self.streams = streams
        self.rate_scale = rate_scale
        self.burst_concurrency = burst_concurrency
        self.max_events = max_events
        self.run_id = run_id
        self.ack_log = ack_log
        self.tick_s = tick_s
        self.clock = clock
        self.acked: list[tuple[str, str, int, float]] = []  # (event_id, stream, seq, device_time) in ack order
        self.refused = 0
        self._issued = 0  # events handed to emit (acked + refused + in flight)
        self._seq = {s.stream: 0 for s in streams}
        self._tasks: list[asyncio.Task] = []
        self._stopping = False

    async def start(self, emit: Emit) -> None:
        self._stopping = False
        if self.burst_concurrency:
            specs = itertools.cycle(self.streams)
            self._tasks = [asyncio.create_task(self._burst(emit, specs)) for _ in range(self.burst_concurrency)]
        else:
            self._tasks = [asyncio.create_task(self._steady(emit))]

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            try:
                await asyncio.wait_for(task, timeout=10.0)
            except TimeoutError:
                task.cancel()
        self._tasks = []

    def health(self) -> dict:
        return {"status": "up", "streams": len(self.streams), "acked": len(self.acked), "refused": self.refused}

    @property
    def done(self) -> bool:
        return self.max_events is not None and len(self.acked) + self.refused >= self.max_events

    async def _steady(self, emit: Emit) -> None:
        started = time.monotonic()
        while not self._stopping and not self.done:
            elapsed = time.monotonic() - started
            batch = []  # everything due this tick: streams concurrently, each stream's events in turn
            for spec in self.streams:
                due = int(elapsed * spec.rate_per_s * self.rate_scale) + 1
                batch += [spec] * max(0, due - self._seq[spec.stream])
            if self.max_events is not None:
                batch = batch[: max(0, self.max_events - self._issued)]
            if batch:
                due_now = collections.Counter(batch)
                await asyncio.gather(*(self._emit_in_turn(emit, spec, n) for spec, n in due_now.items()))
            await asyncio.sleep(self.tick_s)

    async def _emit_in_turn(self, emit: Emit, spec: StreamSpec, count: int) -> None:
        """A device sends its next reading once the previous one was taken (per-stream order even
        when a publish fails and is sent again)."""
        for _ in range(count):
            await self._emit_one(emit, spec)

    async def _burst(self, emit: Emit, specs) -> None:
        while not self._stopping and (self.max_events is None or self._issued < self.max_events):
            await self._emit_one(emit, next(specs))

    async def _emit_one(self, emit: Emit, spec: StreamSpec) -> None:
        seq = self._seq[spec.stream]
        self._seq[spec.stream] = seq + 1
        self._issued += 1
        event = build_event(spec, seq, self.clock(), self.run_id)
        try:
            await emit(event)
        except QueueFullError:
            self.refused += 1  # a real device would resend; the synthetic one counts it
            return
        self.acked.append((event.event_id, event.stream, event.seq, event.device_time))
        if self.ack_log is not None:
            self.ack_log.write(f"{event.event_id} {event.stream} {event.seq}\n")


def streams_for_devices(rules, devices) -> list[StreamSpec]:
    """One stream per device and data class at the sizing rate (edge_buffer.sizing.device_rate)."""
    from edge_buffer.sizing import device_rate

    specs = []
    for d in devices:
        dtype = rules.device_type(d.type)
        for cls in (dtype.data_classes if dtype else []):
            rate, _ = device_rate(rules, d.type, cls)
            if rate > 0 and cls is not DataClass.ASSOCIATION:
                device = Device(id=d.id, type=d.type, serial=d.serial, eui64=d.eui64, model=d.model,
                                manufacturer=d.manufacturer)
                specs.append(StreamSpec(device, cls, rate, d.location))
    return specs
