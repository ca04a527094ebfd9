"""IEEE 11073 SDC connector (sdc11073 3.0 consumer): episodic metric and alert reports -> events.

Per device: connect to the provider at `xaddr` (or find it by WS-Discovery when `discovery: true`
and an `epr` are configured), read the MDIB, subscribe to episodic reports (periodic ones are
not subscribed), and turn every changed state into a canonical event:
- numeric metric states -> numeric events: code = the descriptor's Type code (MDC, e.g. 150456),
  unit = its Unit code (e.g. 262688, an alias of % in the rules), value, DeterminationTime as
  device time, MetricQuality/Validity as quality flags (Qst -> questionable, Calib ->
  calibrating, Inv/Oflw/Uflw/NA -> invalid); a state without a value -> a `missing` marker;
- string / enum-string metric states -> text events;
- alert condition states -> alarm events: priority from the descriptor (Hi/Me/Lo/None), state from
  Presence and ActivationState (Psd -> acknowledged), phase start/update/end from Presence changes.
On (re)connect the current MDIB states are emitted too, so the hub has a baseline; their ids are
stable (device, handle, determination time, value), so repeats are deduplicated downstream.

sdc11073 calls back on its own HTTP thread with the MDIB lock held: the callback copies what it
needs into plain `SdcReading`s (no MDIB access from the event loop) and waits until the loop has
emitted them, so the provider's notification is answered only after emit.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, model_validator

from connectors import metrics
from connectors.base import Emit
from connectors.poll_records import SeqCounter
from connectors.polling import backoff_delay, emit_with_retry, real_sleep
from connectors.registry import connector_settings
from hub.events import (
    Alarm,
    AlarmPhase,
    AlarmPriority,
    AlarmState,
    DataClass,
    Device,
    Event,
    EventKind,
    Provenance,
    Quality,
    make_event_id,
)
from hub.logs import get_logger
from hub.rules.devices import DeviceEntry
from hub.rules.models import RuleSet

log = get_logger("connector.sdc")
CONNECTOR = "sdc"
MDC_SYSTEMS = (None, "", "urn:oid:1.2.840.10004.1.1.1.0.0.1")
VALIDITY_FLAGS = {"Qst": Quality.QUESTIONABLE, "Ong": Quality.QUESTIONABLE, "Calib": Quality.CALIBRATING,
                  "Inv": Quality.INVALID, "Oflw": Quality.INVALID, "Uflw": Quality.INVALID, "NA": Quality.INVALID}
PRIORITIES = {"Hi": AlarmPriority.HIGH, "Me": AlarmPriority.MEDIUM, "Lo": AlarmPriority.LOW, "None": AlarmPriority.INFO}


class SdcSettings(BaseModel):
    """Settings of one SDC device: `device_types[].connector` merged with `devices[].connector`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    xaddr: str | None = Field(None, description="Provider transport address, e.g. http://10.1.2.3:6464/<uuid>.")
    discovery: bool = Field(False, description="Find the provider by WS-Discovery (multicast) instead of xaddr.")
    epr: str | None = Field(None, description="discovery: endpoint reference of the provider (urn:uuid:...).")
    discovery_interface: str = Field("127.0.0.1", description="discovery: local address to send probes from.")
    discovery_timeout_s: float = Field(5.0, gt=0, description="discovery: how long one search lasts (s).")
    socket_timeout_s: int = Field(5, ge=1, description="HTTP timeout towards the provider (s).")
    validate_messages: bool = Field(True, description="Validate SDC messages against the BICEPS schemas.")
    reconnect_initial_s: float = Field(1.0, gt=0, description="First reconnect delay after the provider is lost (s).")
    reconnect_max_s: float = Field(30.0, gt=0, description="Cap of the reconnect backoff (s).")
    check_interval_s: float = Field(2.0, gt=0, description="How often the subscription state is checked (s).")
    emit_initial_states: bool = Field(True, description="Emit the MDIB's current states on each (re)connect.")
    data_class: DataClass = Field(DataClass.VITAL, description="Data class of numeric and text metrics.")

    @model_validator(mode="after")
    def _address(self) -> SdcSettings:
        if not self.xaddr and not (self.discovery and self.epr):
            raise ValueError("set xaddr, or discovery: true with an epr")
        if self.xaddr and not self.xaddr.startswith(("http://", "https://")):
            raise ValueError(f"xaddr must start with http:// or https://, got {self.xaddr!r}")
        return self


@dataclass(frozen=True)
class SdcReading:
    """What one state update says, copied out of the MDIB (plain data, safe across threads)."""

    handle: str
    kind: str  # numeric | text | alert
    code: str | None
    coding_system: str | None
    concept: str | None
    unit: str | None
    value: float | str | None
    validity: str | None
    determination_time: float | None
    priority: str | None = None
    presence: bool | None = None
    activation: str | None = None
    source: str | None = None


# ---------- MDIB -> readings (runs on the sdc11073 thread) ----------


def _text(value) -> str | None:
    return None if value is None else str(getattr(value, "value", value))


def _clean_code(code) -> str | None:
    return None if code is None else "".join(ch for ch in str(code) if ch.isprintable()).strip()


def reading_from_state(state, descriptor) -> SdcReading | None:
    """A metric or alert-condition state and its descriptor -> SdcReading (None: not mapped)."""
    dtype = getattr(descriptor, "Type", None)
    code = _clean_code(dtype.Code) if dtype is not None else None
    system = dtype.CodingSystem if dtype is not None else None
    concept = dtype.ConceptDescription[0].text if dtype is not None and dtype.ConceptDescription else None
    name = type(state).__name__
    if "AlertCondition" in name:
        return SdcReading(state.DescriptorHandle, "alert", code, system, concept, None, None, None,
                          state.DeterminationTime, priority=_text(descriptor.Priority), presence=bool(state.Presence),
                          activation=_text(state.ActivationState),
                          source=descriptor.Source[0] if getattr(descriptor, "Source", None) else None)
    if "Metric" not in name or "RealTimeSampleArray" in name:
        return None
    mv = state.MetricValue
    unit = _clean_code(descriptor.Unit.Code) if getattr(descriptor, "Unit", None) is not None else None
    validity = _text(mv.MetricQuality.Validity) if mv is not None and mv.MetricQuality is not None else None
    at = mv.DeterminationTime if mv is not None else None
    if "NumericMetric" in name:
        value = float(mv.Value) if mv is not None and mv.Value is not None else None
        return SdcReading(state.DescriptorHandle, "numeric", code, system, concept, unit, value, validity, at)
    value = mv.Value if mv is not None else None
    return SdcReading(state.DescriptorHandle, "text", code, system, concept, unit, value, validity, at)


# ---------- readings -> events (pure) ----------


@dataclass
class SdcDeviceState:
    device: Device
    source: str
    location: str | None
    data_class: DataClass
    seq: SeqCounter
    alarms: dict  # handle -> (present, since)


def event_from_reading(st: SdcDeviceState, r: SdcReading, received: float) -> Event | None:
    at = r.determination_time or received
    mdc = int(r.code) if r.code and r.code.isdigit() and r.coding_system in MDC_SYSTEMS else None
    common = {
        "data_class": st.data_class, "device": st.device, "stream": f"{st.device.id}/sdc", "device_time": at,
        "received_time": received, "code_sent": r.code or r.handle,
        "code_system_sent": "MDC" if r.coding_system in MDC_SYSTEMS else r.coding_system, "mdc_code": mdc,
        "unit_sent": r.unit, "source": st.source, "location": st.location,
        "provenance": Provenance(connector=CONNECTOR, raw_ref=r.handle),
    }
    if r.kind == "alert":
        return _alarm_event(st, r, at, common)
    quality = {VALIDITY_FLAGS[r.validity]} if r.validity in VALIDITY_FLAGS else set()
    if r.value is None:
        quality = {Quality.MISSING}
    event_id = make_event_id(st.device.id, r.handle, at, r.value, r.validity)
    if r.kind == "numeric":
        return Event(event_id=event_id, kind=EventKind.NUMERIC, seq=st.seq.next(), value_sent=r.value,
                     quality=frozenset(quality), **common)
    return Event(event_id=event_id, kind=EventKind.TEXT, seq=st.seq.next(), value_sent=r.value, text=r.value,
                 quality=frozenset(quality), **common)


def _alarm_event(st: SdcDeviceState, r: SdcReading, at: float, common: dict) -> Event | None:
    was_present, since = st.alarms.get(r.handle, (False, None))
    if not r.presence and not was_present:
        st.alarms[r.handle] = (False, None)
        return None  # an alarm that is and was absent: nothing to say
    if r.presence and not was_present:
        phase, since = AlarmPhase.START, at
    elif not r.presence:
        phase = AlarmPhase.END
    else:
        phase = AlarmPhase.UPDATE
    st.alarms[r.handle] = (bool(r.presence), since if r.presence else None)
    state = (AlarmState.INACTIVE if not r.presence
             else AlarmState.ACKNOWLEDGED if r.activation == "Psd" else AlarmState.ACTIVE)
    alarm = Alarm(condition=r.code or r.handle, text=r.concept, priority=PRIORITIES.get(r.priority, AlarmPriority.INFO),
                  state=state, phase=phase, alarm_id=make_event_id(st.device.id, r.handle, since),
                  source_metric=r.source)
    return Event(event_id=make_event_id(alarm.alarm_id, phase.value, state.value, at), kind=EventKind.ALARM,
                 seq=st.seq.next(), alarm=alarm, value_sent=alarm.condition,
                 **{**common, "data_class": DataClass.ALARM})


# ---------- one provider (I/O) ----------


class SdcDevice:
    def __init__(self, state: SdcDeviceState, settings: SdcSettings, *, clock: Callable[[], float] = time.time,
                 on_error: Callable[[str, Exception], None] | None = None):
        self.state, self.settings, self.clock, self.on_error = state, settings, clock, on_error
        self.consumer = None
        self.mdib = None
        self.connected = False
        self.counts = {"metric": 0, "alert": 0, "skipped": 0, "connects": 0}
        self.last_error: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._emit: Emit | None = None
        self._lock = asyncio.Lock()  # one emitter at a time: seq order == emit order

    # --- sdc11073 thread side ---

    def _on_states(self, kind: str, states_by_handle: dict) -> None:
        readings = []
        for handle, state in (states_by_handle or {}).items():
            descriptor = self.mdib.descriptions.handle.get_one(handle, allow_none=True)
            reading = reading_from_state(state, descriptor) if descriptor is not None else None
            if reading is None:
                self.counts["skipped"] += 1
                metrics.SDC_REPORTS.labels(kind, "skipped").inc()
                continue
            readings.append(reading)
        if readings and self._loop is not None and not self._loop.is_closed():
            future = asyncio.run_coroutine_threadsafe(self._emit_readings(kind, readings), self._loop)
            try:
                future.result(timeout=60)  # answer the provider's notification only after emit
            except Exception as exc:  # noqa: BLE001 - reported; sdc11073 must not see our errors
                self._report(exc)

    async def _emit_readings(self, kind: str, readings: list[SdcReading]) -> None:
        async with self._lock:
            await self._emit_locked(kind, readings)

    async def _emit_locked(self, kind: str, readings: list[SdcReading]) -> None:
        received = self.clock()
        for reading in readings:
            event = event_from_reading(self.state, reading, received)
            if event is None:
                continue
            await emit_with_retry(self._emit, event, CONNECTOR, real_sleep)
            self.counts[kind] += 1
            metrics.SDC_REPORTS.labels(kind, "emitted").inc()

    def _report(self, exc: Exception) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}"
        metrics.SDC_REPORTS.labels("connection", "error").inc()
        log.warning("sdc device problem", device=self.state.device.id, reason=self.last_error)
        if self.on_error is not None:
            self.on_error(self.state.device.id, exc)

    # --- blocking connect / disconnect (run in a thread) ---

    def _find_xaddr(self) -> str:
        if self.settings.xaddr:
            return self.settings.xaddr
        from sdc11073.definitions_sdc import SdcV1Definitions
        from sdc11073.wsdiscovery import WSDiscovery

        discovery = WSDiscovery(self.settings.discovery_interface)
        discovery.start()
        try:
            services = discovery.search_services(types=SdcV1Definitions.MedicalDeviceTypesFilter,
                                                 timeout=self.settings.discovery_timeout_s)
        finally:
            discovery.stop()
        for service in services:
            if service.epr == self.settings.epr and service.x_addrs:
                return service.x_addrs[0]
        raise ConnectionError(f"WS-Discovery found no provider with epr {self.settings.epr} "
                              f"(found: {', '.join(s.epr for s in services) or 'none'})")

    def _connect_blocking(self) -> list[SdcReading]:
        from sdc11073 import observableproperties
        from sdc11073.consumer.consumerimpl import SdcConsumer
        from sdc11073.definitions_sdc import SdcV1Definitions
        from sdc11073.mdib import ConsumerMdib
        from sdc11073.xml_types.actions import periodic_actions

        consumer = SdcConsumer(self._find_xaddr(), sdc_definitions=SdcV1Definitions, ssl_context_container=None,
                               validate=self.settings.validate_messages, socket_timeout=self.settings.socket_timeout_s)
        consumer.start_all(not_subscribed_actions=periodic_actions)
        mdib = ConsumerMdib(consumer)
        mdib.init_mdib()
        self.consumer, self.mdib = consumer, mdib
        observableproperties.strongbind(mdib, metrics_by_handle=lambda states: self._on_states("metric", states))
        observableproperties.strongbind(mdib, alert_by_handle=lambda states: self._on_states("alert", states))
        initial = []
        if self.settings.emit_initial_states:
            for state in list(mdib.states.objects):
                descriptor = mdib.descriptions.handle.get_one(state.DescriptorHandle, allow_none=True)
                reading = reading_from_state(state, descriptor) if descriptor is not None else None
                if reading is not None and (reading.kind == "alert" or reading.value is not None):
                    initial.append(reading)
        return initial

    def _disconnect_blocking(self, unsubscribe: bool) -> None:
        consumer, self.consumer = self.consumer, None
        if consumer is not None:
            try:
                consumer.stop_all(unsubscribe=unsubscribe)
            except Exception as exc:  # noqa: BLE001 - the provider may already be gone
                log.info("sdc disconnect", device=self.state.device.id, note=type(exc).__name__)

    # --- supervisor ---

    async def run(self, emit: Emit) -> None:
        self._loop, self._emit = asyncio.get_running_loop(), emit
        failures = 0
        try:
            while True:
                try:
                    initial = await asyncio.to_thread(self._connect_blocking)
                except Exception as exc:  # noqa: BLE001 - any connect failure is retried with backoff
                    failures += 1
                    self._report(exc)
                    await asyncio.to_thread(self._disconnect_blocking, False)
                    await asyncio.sleep(backoff_delay(failures, self.settings.reconnect_initial_s, 2.0,
                                                      self.settings.reconnect_max_s))
                    continue
                failures = 0
                self.connected = True
                self.counts["connects"] += 1
                log.info("sdc provider connected", device=self.state.device.id, states=len(initial))
                by_kind: dict[str, list] = {}
                for reading in initial:
                    by_kind.setdefault("alert" if reading.kind == "alert" else "metric", []).append(reading)
                for kind, readings in by_kind.items():
                    await self._emit_readings(kind, readings)
                while self.consumer is not None and self.consumer.is_connected:
                    await asyncio.sleep(self.settings.check_interval_s)
                self.connected = False
                self._report(ConnectionError("subscription to the provider lost; reconnecting"))
                await asyncio.to_thread(self._disconnect_blocking, False)
        finally:
            self.connected = False

    def health(self) -> dict:
        return {"device": self.state.device.id, "connected": self.connected, "last_error": self.last_error,
                **self.counts}


class SdcConnector:
    name = "sdc"

    def __init__(self, devices: list[SdcDevice]):
        self.devices = devices
        self.errors: deque[tuple[str, str]] = deque(maxlen=200)
        for device in devices:
            callback = device.on_error
            device.on_error = self._recorder(callback)
        self._tasks: list[asyncio.Task] = []

    def _recorder(self, callback):
        def record(device_id: str, exc: Exception) -> None:
            self.errors.append((device_id, f"{type(exc).__name__}: {exc}"))
            if callback is not None:
                callback(device_id, exc)
        return record

    @classmethod
    def from_rules(cls, rules: RuleSet, *, devices: list[DeviceEntry], overrides: dict | None = None,
                   clock: Callable[[], float] = time.time,
                   on_error: Callable[[str, Exception], None] | None = None) -> SdcConnector:
        built = []
        for entry in devices:
            dtype = rules.device_type(entry.type)
            settings = connector_settings(SdcSettings, rules, entry)
            device = Device(id=entry.id, type=entry.type, serial=entry.serial, eui64=entry.eui64, model=entry.model,
                            manufacturer=entry.manufacturer)
            state = SdcDeviceState(device, dtype.source, entry.location, settings.data_class,
                                   SeqCounter.starting_at(clock()), {})
            built.append(SdcDevice(state, settings, clock=clock, on_error=on_error))
        return cls(built)

    async def start(self, emit: Emit) -> None:
        self._tasks = [asyncio.create_task(d.run(emit), name=f"sdc:{d.state.device.id}") for d in self.devices]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for device in self.devices:
            device._loop = None
            await asyncio.to_thread(device._disconnect_blocking, True)

    def health(self) -> dict:
        devices = [d.health() for d in self.devices]
        up = sum(1 for d in devices if d["connected"])
        status = "up" if up == len(devices) else ("down" if up == 0 else "degraded")
        return {"status": status, "connector": self.name, "devices": devices}
