"""MQTT subscriber: edge gateways and MQTT devices publish events; the hub subscribes with QoS 1.

Guarantee: a message is acknowledged (PUBACK) only after every event decoded from it was
accepted by `emit`. The session is persistent (MQTT 3.1.1 clean_session=false, or MQTT 5
clean_start=false with a session expiry), so what was not acknowledged before a crash, a
connector stop or a broker restart is delivered again; the hub dedupes by event id.

Payloads (UTF-8 JSON):
- a canonical event (`hub.events.Event` JSON, with `event_id`),
- a batch `{"events": [<canonical event>, ...]}`,
- a gateway summary `{"device": "OXI-02", "gateway": "GW-1", "seq": 17, "time": 1763700000.5,
  "values": [{"code": "SPO2", "system": "ACME", "value": 97, "unit": "%"}], "alarms": [...]}`.
A payload that cannot be decoded is logged with the reason, counted, reported to `on_error`
and acknowledged (so it is not redelivered forever); the stream carries on.

paho-mqtt runs its network loop in a thread; messages cross into asyncio through a queue
and are handled one at a time, in arrival order, so acknowledgements go out in order.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import ValidationError

from connectors import metrics
from connectors.base import Emit
from connectors.polling import emit_with_retry, real_sleep
from hub.errors import DecodeError
from hub.events import (
    Alarm,
    AlarmPhase,
    DataClass,
    Device,
    Event,
    EventKind,
    Provenance,
    make_event_id,
)
from hub.logs import get_logger
from hub.rules.connectors import MqttSubscription
from hub.rules.devices import DeviceEntry
from hub.rules.models import RuleSet

log = get_logger("connector.mqtt")
CONNECTOR = "mqtt"


# ---------- decoding (pure) ----------


def _validation_reason(exc: ValidationError) -> tuple[str, str]:
    err = exc.errors(include_url=False)[0]
    field = ".".join(str(p) for p in err["loc"]) or "(root)"
    return field, err["msg"]


def decode_canonical(data: dict) -> Event:
    try:
        return Event.model_validate(data)
    except ValidationError as exc:
        field, msg = _validation_reason(exc)
        raise DecodeError(f"not a valid canonical event: {msg}", field=field) from None


def _summary_device(data: dict, rules: RuleSet) -> tuple[Device, DeviceEntry]:
    device_id = data.get("device")
    if not isinstance(device_id, str):
        raise DecodeError("gateway summary needs 'device' (a device id from the rules)", field="device")
    entry = rules.device(device_id)
    if entry is None:
        raise DecodeError(f"unknown device {device_id!r} (not in the rules' devices)", field="device")
    return Device(id=entry.id, type=entry.type, serial=entry.serial, eui64=entry.eui64, model=entry.model,
                  manufacturer=entry.manufacturer), entry


def decode_summary(data: dict, rules: RuleSet, received: float) -> list[Event]:
    """A gateway summary -> events: one stream per device channel (`DEV/code`, `DEV/alarms`), seq = summary seq."""
    device, entry = _summary_device(data, rules)
    dtype = rules.device_type(entry.type)
    seq, at = data.get("seq"), data.get("time")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise DecodeError(f"'seq' must be a non-negative integer, got {seq!r}", field="seq")
    if not isinstance(at, int | float) or isinstance(at, bool):
        raise DecodeError(f"'time' must be epoch seconds, got {at!r}", field="time")
    gateway = data.get("gateway") if isinstance(data.get("gateway"), str) else entry.gateway
    values, alarms = data.get("values", []), data.get("alarms", [])
    if not isinstance(values, list) or not isinstance(alarms, list) or not (values or alarms):
        raise DecodeError("gateway summary needs a non-empty 'values' or 'alarms' list", field="values")
    common = {"device": device, "device_time": float(at), "received_time": received, "source": dtype.source if dtype else None,
                  "location": entry.location}
    out = []
    for i, item in enumerate(values):
        out.append(_summary_value(item, i, data["device"], seq, gateway, common, dtype))
    for i, item in enumerate(alarms):
        out.append(_summary_alarm(item, i, data["device"], seq, gateway, common))
    return out


def _summary_value(item: Any, i: int, device_id: str, seq: int, gateway: str | None, common: dict, dtype) -> Event:
    where = f"values[{i}]"
    if not isinstance(item, dict) or not isinstance(item.get("code"), str):
        raise DecodeError("each value needs a string 'code'", field=where)
    value = item.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise DecodeError(f"'value' must be a number or a string, got {value!r}", field=f"{where}.value")
    default_class = dtype.data_classes[0] if dtype and dtype.data_classes else DataClass.VITAL
    try:
        data_class = DataClass(item.get("data_class", default_class))
    except ValueError:
        raise DecodeError(f"unknown data_class {item.get('data_class')!r} (known: "
                          f"{', '.join(d.value for d in DataClass)})", field=f"{where}.data_class") from None
    code = item["code"]
    numeric = not isinstance(value, str)
    return Event(
        event_id=make_event_id(device_id, code, common["device_time"], "mqtt-summary"),
        kind=EventKind.NUMERIC if numeric else EventKind.TEXT, data_class=data_class,
        stream=f"{device_id}/{code}", seq=seq, code_sent=code, code_system_sent=item.get("system"),
        value_sent=float(value) if numeric else value, text=None if numeric else value, unit_sent=item.get("unit"),
        provenance=Provenance(connector=CONNECTOR, gateway=gateway, raw_ref=f"summary {seq} {where}"), **common,
    )


def _summary_alarm(item: Any, i: int, device_id: str, seq: int, gateway: str | None, common: dict) -> Event:
    where = f"alarms[{i}]"
    if not isinstance(item, dict):
        raise DecodeError("each alarm is an object", field=where)
    item = {"phase": AlarmPhase.START.value, **item}
    item.setdefault("alarm_id", make_event_id(device_id, item.get("condition"), common["device_time"]))
    try:
        alarm = Alarm.model_validate(item)
    except ValidationError as exc:
        field, msg = _validation_reason(exc)
        raise DecodeError(msg, field=f"{where}.{field}") from None
    return Event(
        event_id=make_event_id(alarm.alarm_id, alarm.phase.value, alarm.state.value, common["device_time"]),
        kind=EventKind.ALARM, data_class=DataClass.ALARM, stream=f"{device_id}/alarms", seq=seq,
        code_sent=alarm.condition, alarm=alarm,
        provenance=Provenance(connector=CONNECTOR, gateway=gateway, raw_ref=f"summary {seq} {where}"), **common,
    )


def decode_payload(payload: bytes, rules: RuleSet, received: float) -> list[Event]:
    """One MQTT payload -> events. Raises DecodeError with the reason (and field)."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(f"payload is not UTF-8 (byte 0x{payload[exc.start]:02x} at {exc.start})") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise DecodeError(f"payload is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise DecodeError(f"payload is a JSON {type(data).__name__}; expected an object")
    if "event_id" in data:
        return [decode_canonical(data)]
    if "events" in data:
        if not isinstance(data["events"], list) or not data["events"]:
            raise DecodeError("'events' must be a non-empty list of canonical events", field="events")
        out = []
        for i, item in enumerate(data["events"]):
            if not isinstance(item, dict):
                raise DecodeError("not an object", field=f"events[{i}]")
            try:
                out.append(decode_canonical(item))
            except DecodeError as exc:
                raise DecodeError(exc.reason, field=f"events[{i}].{exc.field}") from None
        return out
    if "device" in data:
        return decode_summary(data, rules, received)
    raise DecodeError("expected a canonical event (with event_id), {'events': [...]} or a gateway summary "
                      f"(device, seq, time, values); got keys {sorted(data)[:8]}")


REASON_LABELS = (
    ("payload is not UTF-8", "not-utf8"),
    ("payload is not JSON", "not-json"),
    ("not a valid canonical event", "invalid-event"),
    ("unknown device", "unknown-device"),
    ("expected a canonical event", "unknown-shape"),
    ("payload is a JSON", "unknown-shape"),
)


def reason_label_of(exc: DecodeError) -> str:
    """A fixed, low-cardinality metric label for a decode failure (never device-sent text)."""
    return next((label for prefix, label in REASON_LABELS if exc.reason.startswith(prefix)), "invalid-summary")


# ---------- the connector (I/O) ----------


def confirm_acks(client: mqtt.Client, timeout_s: float) -> bool:
    """Block until the broker answered a PINGREQ sent after everything queued so far (paho has no
    public call for this; its private `_send_pingreq` / `_ping_t` are used, guarded)."""
    deadline = time.monotonic() + timeout_s
    while client.want_write() and time.monotonic() < deadline:
        time.sleep(0.005)
    send = getattr(client, "_send_pingreq", None)
    if send is None or not hasattr(client, "_ping_t") or send() != mqtt.MQTT_ERR_SUCCESS:
        time.sleep(0.3)  # fallback: give the broker time to read what we wrote
        return False
    while client._ping_t != 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    return client._ping_t == 0


class MqttConnector:
    name = "mqtt"

    def __init__(self, settings: MqttSubscription, rules: RuleSet, *,
                 on_error: Callable[[str, bytes, DecodeError], None] | None = None, clock=time.time):
        self.settings, self.rules, self.on_error, self.clock = settings, rules, on_error, clock
        self.errors: deque[tuple[str, str]] = deque(maxlen=200)  # (topic, reason)
        self.counts = {"received": 0, "emitted_events": 0, "acked": 0, "rejected": 0, "stale_acks_skipped": 0}
        self.connected = False
        self.connections = 0
        self._generation = 0
        self._client: mqtt.Client | None = None
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._disconnected = threading.Event()
        self._acks: deque[tuple[int, int, int]] = deque()
        self._ack_lock = threading.Lock()
        self._inbox: list = []
        self._inbox_lock = threading.Lock()
        self._inbox_signalled = False
        self._stopping = False

    @classmethod
    def from_rules(cls, rules: RuleSet, *, devices: list[DeviceEntry] | None = None,
                   overrides: dict | None = None, **kwargs) -> MqttConnector:
        settings = rules.connectors.mqtt or MqttSubscription()
        if overrides:
            settings = MqttSubscription.model_validate({**settings.model_dump(), **overrides})
        return cls(settings, rules, **kwargs)

    # --- paho thread callbacks: only hand over to the event loop ---

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("broker refused connection", reason=str(reason_code))
            return
        self._generation += 1
        self.connections += 1
        if self.connections > 1:
            metrics.MQTT_RECONNECTS.inc()
        self.connected = True
        metrics.MQTT_CONNECTED.set(1)
        client.subscribe([(topic, self.settings.qos) for topic in self.settings.topics])
        log.info("connected", broker=f"{self.settings.host}:{self.settings.port}",
                 session_present=getattr(flags, "session_present", None), connection=self.connections)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._generation += 1  # acks of messages from the lost connection must not reach the next one
        self.connected = False
        metrics.MQTT_CONNECTED.set(0)
        if self._stopping:
            log.info("disconnected", reason=str(reason_code))
        else:
            log.warning("disconnected; reconnecting", reason=str(reason_code))
        self._disconnected.set()

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        item = (self._generation, message.mid, message.qos, message.topic, bytes(message.payload))
        with self._inbox_lock:
            self._inbox.append(item)
            if self._inbox_signalled:
                return  # the loop has been woken already and will take this one too
            self._inbox_signalled = True
        self._loop.call_soon_threadsafe(self._take_inbox)

    def _take_inbox(self) -> None:
        with self._inbox_lock:
            items, self._inbox = self._inbox, []
            self._inbox_signalled = False
        for item in items:
            self._queue.put_nowait(item)

    # --- lifecycle ---

    def _make_client(self) -> mqtt.Client:
        s = self.settings
        v5 = s.protocol_version == "5"
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=s.client_id,
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            clean_session=None if v5 else False, manual_ack=True,
        )
        if s.username:
            password = Path(s.password_file).read_text().strip() if s.password_file else None
            client.username_pw_set(s.username, password)
        client.reconnect_delay_set(min_delay=0.1, max_delay=s.reconnect_max_s)
        client.on_connect, client.on_disconnect, client.on_message = (
            self._on_connect, self._on_disconnect, self._on_message)
        return client

    def _connect_kwargs(self) -> dict:
        if self.settings.protocol_version != "5":
            return {}
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.settings.session_expiry_s
        return {"clean_start": False, "properties": props}

    async def start(self, emit: Emit) -> None:
        self._stopping = False
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        self._client = self._make_client()
        self._client.connect_async(self.settings.host, self.settings.port, keepalive=self.settings.keepalive_s,
                                   **self._connect_kwargs())
        self._client.loop_start()
        self._task = asyncio.create_task(self._consume(emit), name="mqtt-consume")

    async def stop(self) -> None:
        """Stop consuming; messages not yet acknowledged stay with the broker for the next session."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._client is not None:
            self._flush_acks()  # what was emitted is acknowledged before we leave
            client, self._client = self._client, None
            await asyncio.to_thread(self._disconnect, client)
        self.connected = False
        metrics.MQTT_CONNECTED.set(0)

    def _disconnect(self, client: mqtt.Client) -> None:
        """DISCONNECT only once the broker has processed our PUBACKs: a PINGREQ is answered after
        every packet sent before it, so its PINGRESP confirms them (without this round trip,
        Mosquitto was seen redelivering the last acknowledged messages to the next session)."""
        self._disconnected.clear()
        confirm_acks(client, timeout_s=2.0)
        if client.disconnect() == mqtt.MQTT_ERR_SUCCESS:
            self._disconnected.wait(5.0)
        client.loop_stop()

    # --- consuming ---

    async def _consume(self, emit: Emit) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty() and len(batch) < 500:  # drain what is there: fewer wake-ups
                batch.append(self._queue.get_nowait())
            for generation, mid, qos, topic, payload in batch:
                await self._handle(emit, generation, mid, qos, topic, payload)

    async def _handle(self, emit: Emit, generation: int, mid: int, qos: int, topic: str, payload: bytes) -> None:
        """Decode, emit every event, then (and only then) acknowledge; bad payloads are acknowledged too."""
        self.counts["received"] += 1
        try:
            events = decode_payload(payload, self.rules, self.clock())
        except DecodeError as exc:
            self._reject(topic, payload, exc)
        else:
            for event in events:
                await emit_with_retry(emit, event, CONNECTOR, real_sleep)
            self.counts["emitted_events"] += len(events)
            metrics.MQTT_MESSAGES.labels("emitted").inc()
        self._ack(generation, mid, qos)

    def _ack(self, generation: int, mid: int, qos: int) -> None:
        """Acknowledge now: the broker keeps only a small window of unacknowledged messages in
        flight (Mosquitto: 20), so a delayed PUBACK stalls the stream."""
        if qos == 0:
            return
        with self._ack_lock:
            self._acks.append((generation, mid, qos))
        self._flush_acks()

    def _flush_acks(self) -> None:
        """Send queued acknowledgements in order; those of a connection that is gone are dropped
        (their mids mean nothing on the new connection, and the broker redelivers them)."""
        client = self._client
        with self._ack_lock:
            pending, self._acks = self._acks, deque()
            for generation, mid, qos in pending:
                if generation != self._generation or client is None:
                    self.counts["stale_acks_skipped"] += 1
                    continue
                client.ack(mid, qos)
                self.counts["acked"] += 1

    def _reject(self, topic: str, payload: bytes, exc: DecodeError) -> None:
        self.counts["rejected"] += 1
        reason_label = reason_label_of(exc)
        metrics.MQTT_MESSAGES.labels("rejected").inc()
        metrics.MQTT_DECODE_ERRORS.labels(reason_label).inc()
        self.errors.append((topic, str(exc)))
        log.warning("payload rejected", topic=topic, reason=str(exc), bytes=len(payload))
        if self.on_error is not None:
            self.on_error(topic, payload, exc)

    def health(self) -> dict:
        return {"status": "up" if self.connected else "down", "connector": self.name,
                "broker": f"{self.settings.host}:{self.settings.port}", "client_id": self.settings.client_id,
                "connections": self.connections, "queued": self._queue.qsize() if self._queue else 0,
                **self.counts, "last_error": self.errors[-1][1] if self.errors else None}
