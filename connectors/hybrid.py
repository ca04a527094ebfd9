"""Hybrid connector (baseline and delta): device events for alarms and changes, plus a periodic
baseline poll that catches what the event channel missed.

Per device (protocol `hybrid-tcp`, see connectors/simulators/ventilator.py for the wire format):
- an event channel: one TCP connection, `SUBSCRIBE`, then pushed `TYPE=EVENT;SEQ=n;TIME=t;KEY=V`
  lines and heartbeats. Each change is emitted at once; the connector keeps the event-derived
  state (key -> value, and the device SEQ that set it). A gap in SEQ triggers a baseline poll now.
- a baseline poll every `baseline_interval_s`: `GET STATUS` answers the whole state and the
  device's last SEQ. A value that differs from the event-derived state is emitted again flagged
  `corrective` (unless an event newer than the snapshot already set it).
- fallback: when the event channel is silent (no event, no heartbeat) for `silence_fallback_s`,
  the device is polled at the profile's poll interval (`mode: polling` in health()); the first
  event or heartbeat afterwards returns it to `mode: events`.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from connectors import metrics
from connectors.base import Emit
from connectors.poll_records import (
    DeviceState,
    FieldSpec,
    Record,
    build_events,
    parse_status_line,
    record_from_values,
)
from connectors.polling import LineTransport, PollError, backoff_delay, emit_with_retry, real_sleep
from connectors.registry import connector_settings, rule_location
from hub.errors import DecodeError, RuleError
from hub.events import Event, Quality
from hub.logs import get_logger
from hub.rules.devices import DeviceEntry
from hub.rules.models import RuleSet

log = get_logger("connector.hybrid")
CONNECTOR = "hybrid-tcp"
META_KEYS = ("TYPE", "SEQ")


class HybridSettings(BaseModel):
    """Settings of one hybrid device: `device_types[].connector` merged with `devices[].connector`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field("127.0.0.1", description="Device host.")
    port: int = Field(ge=1, le=65535, description="Device TCP port (events and status polls).")
    subscribe_command: str = Field("SUBSCRIBE", description="Line that opens the event channel.")
    status_command: str = Field("GET STATUS", description="Line that asks for the whole state.")
    timeout_s: float = Field(2.0, gt=0, description="Status poll timeout (s).")
    baseline_interval_s: float = Field(60.0, gt=0, description="Baseline poll interval while events flow (s).")
    poll_interval_s: float | None = Field(
        None, gt=0, description="Poll interval while the event channel is silent; default: the profile's poll_interval_s."
    )
    silence_fallback_s: float = Field(15.0, gt=0, description="Event channel silent this long -> fall back to polling (s).")
    reconnect_initial_s: float = Field(0.5, gt=0, description="First event-channel reconnect delay (s).")
    reconnect_max_s: float = Field(30.0, gt=0, description="Cap of the reconnect backoff (s).")
    time_field: str = Field("TIME", description="Key holding the device time (epoch s).")
    fields: dict[str, FieldSpec] = Field(default_factory=dict, description="Meaning of each key the device sends.")
    unknown_fields: Literal["emit", "ignore"] = Field("emit", description="Keys not in `fields`: emit or ignore.")
    max_line_bytes: int = Field(8192, ge=64, description="Longer lines are rejected.")


def split_meta(values: dict[str, str], where: str) -> tuple[str, int | None, dict[str, str]]:
    """(TYPE, SEQ, the remaining values) of one line. Raises DecodeError for a bad SEQ."""
    kind = values.get("TYPE", "")
    raw_seq = values.get("SEQ")
    try:
        seq = int(raw_seq) if raw_seq is not None else None
    except ValueError:
        raise DecodeError(f"{where}: SEQ {raw_seq!r} is not an integer", field="SEQ") from None
    return kind, seq, {k: v for k, v in values.items() if k not in META_KEYS}


def baseline_diff(known: dict[str, tuple[str, int]], snapshot: dict[str, str], snapshot_seq: int) -> tuple[dict, dict]:
    """Compare a snapshot with the event-derived state.

    Returns (corrections, initial): keys whose known value differs (and was not set by an event
    newer than the snapshot), and keys never seen before. Pure.
    """
    corrections, initial = {}, {}
    for key, raw in snapshot.items():
        if key not in known:
            initial[key] = raw
            continue
        value, set_by = known[key]
        if value != raw and set_by <= snapshot_seq:
            corrections[key] = raw
    return corrections, initial


class HybridDevice:
    """One device: event reader task + baseline/fallback poll task, sharing one state."""

    def __init__(self, state: DeviceState, settings: HybridSettings, poll_interval_s: float, *,
                 clock: Callable[[], float] = time.time, on_error: Callable[[str, Exception], None] | None = None):
        self.state, self.settings, self.poll_interval_s = state, settings, poll_interval_s
        self.clock, self.on_error = clock, on_error
        self.transport = LineTransport(settings.host, settings.port, settings.status_command, settings.timeout_s,
                                       settings.max_line_bytes)
        self.known: dict[str, tuple[str, int]] = {}
        self.mode = "events"
        self.last_event_seq: int | None = None
        self.last_heard: float = clock()
        self.counts = {"events": 0, "gaps": 0, "baselines": 0, "corrections": 0, "fallbacks": 0, "poll_failures": 0}
        self.channel_up = False
        self._poll_now = asyncio.Event()
        self._lock = asyncio.Lock()

    # --- shared emit path: build + emit under one lock, so seq order == emit order ---

    async def _emit_values(self, emit: Emit, values: dict[str, str], device_time: float, seq: int,
                           corrective: bool) -> list[Event]:
        async with self._lock:
            received = self.clock()
            events = build_events(self.state, Record(values, device_time), self.settings, received)
            if corrective:
                events = [e.flagged(Quality.CORRECTIVE) for e in events]
            for key, raw in values.items():
                self.known[key] = (raw, seq)
            for event in events:
                await emit_with_retry(emit, event, CONNECTOR, real_sleep)
            return events

    def _report(self, exc: Exception) -> None:
        log.warning("hybrid device problem", device=self.state.device.id, reason=str(exc))
        if self.on_error is not None:
            self.on_error(self.state.device.id, exc)

    # --- event channel ---

    async def read_events(self, emit: Emit) -> None:
        failures = 0
        while True:
            try:
                reader, writer = await asyncio.open_connection(self.settings.host, self.settings.port,
                                                               limit=self.settings.max_line_bytes)
            except OSError as exc:
                failures += 1
                self._report(PollError("refused", f"event channel {self.transport.where}: {exc}"))
                await asyncio.sleep(backoff_delay(failures, self.settings.reconnect_initial_s, 2.0,
                                                  self.settings.reconnect_max_s))
                continue
            failures = 0
            try:
                writer.write(self.settings.subscribe_command.encode() + b"\n")
                await writer.drain()
                self.channel_up = True
                self._poll_now.set()  # anything may have changed while we were away
                while line := await reader.readuntil(b"\n"):
                    await self._on_line(emit, line)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
                self._report(PollError("io-error", f"event channel {self.transport.where}: {type(exc).__name__}"))
            finally:
                self.channel_up = False
                writer.close()
            await asyncio.sleep(self.settings.reconnect_initial_s)

    async def _on_line(self, emit: Emit, line: bytes) -> None:
        try:
            kind, seq, values = split_meta(parse_status_line(line), "event line")
            record = record_from_values(values, self.settings.time_field, self.clock())
        except DecodeError as exc:
            self._report(exc)  # a garbled line is reported; the gap check / next baseline repairs the state
            self._poll_now.set()
            return
        self._heard()
        if seq is not None and self.last_event_seq is not None and seq > self.last_event_seq + (kind == "EVENT"):
            missed = seq - self.last_event_seq - (kind == "EVENT")
            self.counts["gaps"] += missed
            metrics.HYBRID_EVENT_GAPS.inc(missed)
            self._poll_now.set()
        if seq is not None:
            self.last_event_seq = max(self.last_event_seq or 0, seq)
        if kind == "EVENT" and record.values:
            self.counts["events"] += 1
            await self._emit_values(emit, record.values, record.device_time, seq or 0, corrective=False)

    def _heard(self) -> None:
        self.last_heard = self.clock()
        if self.mode == "polling":
            self.mode = "events"
            log.info("event channel back; baseline polling", device=self.state.device.id)

    # --- baseline / fallback polls ---

    def update_mode(self, now: float) -> str:
        if self.mode == "events" and now - self.last_heard > self.settings.silence_fallback_s:
            self.mode = "polling"
            self.counts["fallbacks"] += 1
            metrics.HYBRID_FALLBACKS.inc()
            log.warning("event channel silent; polling", device=self.state.device.id,
                        silent_s=round(now - self.last_heard, 1))
        return self.mode

    async def baseline(self, emit: Emit) -> None:
        """One status poll reconciled against the event-derived state."""
        try:
            answer = await self.transport.fetch()
            _kind, seq, values = split_meta(answer, "status answer")
            record = record_from_values(values, self.settings.time_field, self.clock())
        except (PollError, DecodeError) as exc:
            self.counts["poll_failures"] += 1
            metrics.POLL_REQUESTS.labels(CONNECTOR, getattr(exc, "outcome", "decode-error")).inc()
            self._report(exc)
            return
        metrics.POLL_REQUESTS.labels(CONNECTOR, "ok").inc()
        snapshot_seq = seq if seq is not None else (self.last_event_seq or 0)
        corrections, initial = baseline_diff(self.known, record.values, snapshot_seq)
        if corrections:
            corrective = self.mode == "events"  # while polling, polls are the data, not corrections
            fixed = await self._emit_values(emit, corrections, record.device_time, snapshot_seq, corrective=corrective)
            if corrective:
                self.counts["corrections"] += len(fixed)
                metrics.HYBRID_CORRECTIONS.inc(len(fixed))
        if initial:
            await self._emit_values(emit, initial, record.device_time, snapshot_seq, corrective=False)
        self.counts["baselines"] += 1

    async def poll_loop(self, emit: Emit) -> None:
        last_poll = None
        while True:
            now = self.clock()
            mode = self.update_mode(now)
            interval = self.poll_interval_s if mode == "polling" else self.settings.baseline_interval_s
            if last_poll is None or now - last_poll >= interval or self._poll_now.is_set():
                self._poll_now.clear()
                last_poll = now
                await self.baseline(emit)
                continue
            wait = last_poll + interval - now
            if mode == "events":
                wait = min(wait, self.last_heard + self.settings.silence_fallback_s - now + 0.01)
            try:
                await asyncio.wait_for(self._poll_now.wait(), timeout=max(0.01, wait))
            except TimeoutError:
                pass

    def health(self) -> dict:
        return {"device": self.state.device.id, "mode": self.mode, "event_channel": self.channel_up,
                "last_event_seq": self.last_event_seq, **self.counts}


class HybridConnector:
    name = "hybrid"

    def __init__(self, devices: list[HybridDevice]):
        self.devices = devices
        self.errors: deque[tuple[str, str]] = deque(maxlen=200)
        for device in devices:
            callback = device.on_error
            device.on_error = self._recorder(callback)
        self._tasks: list[asyncio.Task] = []

    def _recorder(self, callback):
        def record(device_id: str, exc: Exception) -> None:
            self.errors.append((device_id, str(exc)))
            if callback is not None:
                callback(device_id, exc)
        return record

    @classmethod
    def from_rules(cls, rules: RuleSet, *, devices: list[DeviceEntry], overrides: dict | None = None,
                   clock: Callable[[], float] = time.time,
                   on_error: Callable[[str, Exception], None] | None = None) -> HybridConnector:
        built = []
        for entry in devices:
            dtype = rules.device_type(entry.type)
            if "port" not in {**dtype.connector, **entry.connector}:
                raise RuleError(f"{rule_location(rules, entry)}device {entry.id}: hybrid-tcp needs "
                                f"devices[{entry.id}].connector.port (and host)")
            settings = connector_settings(HybridSettings, rules, entry)
            intervals = [rules.profile(dc).poll_interval_s for dc in dtype.data_classes]
            interval = settings.poll_interval_s or min((i for i in intervals if i), default=10.0)
            state = DeviceState.for_device(entry, dtype, stream=f"{entry.id}/hybrid", connector=CONNECTOR,
                                           now=clock())
            built.append(HybridDevice(state, settings, interval, clock=clock, on_error=on_error))
        return cls(built)

    async def start(self, emit: Emit) -> None:
        for device in self.devices:
            device.last_heard = device.clock()
            self._tasks.append(asyncio.create_task(device.read_events(emit), name=f"hybrid-events:{device.state.device.id}"))
            self._tasks.append(asyncio.create_task(device.poll_loop(emit), name=f"hybrid-poll:{device.state.device.id}"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def health(self) -> dict:
        devices = [d.health() for d in self.devices]
        degraded = any(d["mode"] == "polling" or not d["event_channel"] for d in devices)
        return {"status": "degraded" if degraded else "up", "connector": self.name, "devices": devices}
