"""Polled device answers -> canonical events (pure: `now` and state passed in).

Shared by the polling and hybrid connectors. A device answer is a flat mapping of keys to
values (`RATE=12.5;VTBI=250;STATE=RUNNING;ALARM=NONE;TIME=1763700000.5` on a line, or the
same keys as a JSON object); `FieldSpec`s from the rules say what each key means.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from hub.errors import DecodeError
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
from hub.rules.devices import DeviceEntry, DeviceType
from hub.rules.models import RuleSet
from hub.rules.profiles import StalenessAction

KEY_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-]*$")
MEASUREMENT_CLASSES = (DataClass.VITAL, DataClass.SETTING, DataClass.TREND, DataClass.SPOT_CHECK)


class FieldSpec(BaseModel):
    """What one key of a device answer means."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str | None = Field(None, description="Code as sent (default: the key itself).")
    system: str = Field("VENDOR", description="Code system of `code` (MDC, or a vendor name).")
    mdc_code: int | None = Field(None, description="IEEE 11073 MDC numeric code when known.")
    unit: str | None = Field(None, description="Unit as the device means it (e.g. ml/h, MDC_DIM_MILLI_L).")
    kind: Literal["numeric", "text", "status", "alarm"] = Field("numeric", description="How to read the value.")
    data_class: DataClass | None = Field(
        None, description="Data class (default: status for status, alarm for alarm, else the type's first measurement class)."
    )
    alarm_priority: Literal["high", "medium", "low", "info"] = Field("high", description="alarm: priority of a raised alarm.")
    no_alarm: list[str] = Field(default_factory=lambda: ["NONE", "OK", ""], description="alarm: values meaning no alarm.")


@dataclass
class SeqCounter:
    """Monotonic per stream; starts at the start time in ms so a restarted connector continues above."""

    value: int

    @classmethod
    def starting_at(cls, now: float) -> SeqCounter:
        return cls(int(now * 1000))

    def next(self) -> int:
        self.value += 1
        return self.value


@dataclass
class DeviceState:
    """What a connector remembers about one device between polls."""

    device: Device
    source: str
    location: str | None
    gateway: str | None
    stream: str
    connector: str
    default_class: DataClass
    seq: SeqCounter
    last_fresh: dict[str, tuple[float, Event]] = field(default_factory=dict)  # key -> (received, last event)
    stale: set[str] = field(default_factory=set)  # keys already flagged in this staleness episode
    alarms: dict[str, tuple[str, float]] = field(default_factory=dict)  # key -> (active condition, since)

    @classmethod
    def for_device(cls, entry: DeviceEntry, dtype: DeviceType, *, stream: str, connector: str, now: float) -> DeviceState:
        device = Device(id=entry.id, type=entry.type, serial=entry.serial, eui64=entry.eui64,
                        model=entry.model, manufacturer=entry.manufacturer)
        default_class = next((dc for dc in dtype.data_classes if dc in MEASUREMENT_CLASSES), DataClass.VITAL)
        return cls(device, dtype.source, entry.location, entry.gateway, stream, connector, default_class,
                   SeqCounter.starting_at(now))


@dataclass(frozen=True)
class Record:
    values: dict[str, str]
    device_time: float


# ---------- decoding ----------


def parse_status_line(line: bytes) -> dict[str, str]:
    """`KEY=VALUE;KEY=VALUE` -> dict. Raises DecodeError naming the bad part."""
    try:
        text = line.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        raise DecodeError(f"answer is not UTF-8 (byte 0x{line[exc.start]:02x} at {exc.start})") from None
    if not text:
        raise DecodeError("empty answer line (expected KEY=VALUE pairs separated by ';')")
    out: dict[str, str] = {}
    for part in text.split(";"):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or not KEY_RE.match(key):
            raise DecodeError(
                f"answer {text[:80]!r}: part {part[:40]!r} is not KEY=VALUE (expected e.g. RATE=12.5;STATE=RUNNING)"
            )
        if key in out:
            raise DecodeError(f"answer {text[:80]!r}: key {key!r} appears twice")
        out[key] = value.strip()
    return out


def parse_status_json(body: bytes) -> dict[str, str]:
    """A flat JSON object of scalars -> dict of strings. Raises DecodeError."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise DecodeError(f"body is not JSON ({exc}); got {body[:60]!r}") from None
    if not isinstance(data, dict):
        raise DecodeError(f"expected a JSON object of KEY: value, got {type(data).__name__}")
    out: dict[str, str] = {}
    for key, value in data.items():
        if isinstance(value, dict | list):
            raise DecodeError(f"value of {key!r} is a {type(value).__name__}; expected a number or a string", field=key)
        out[str(key)] = "" if value is None else str(value)
    return out


def record_from_values(values: dict[str, str], time_field: str, received: float) -> Record:
    """Split off the device time (absent: the received time)."""
    values = dict(values)
    raw_time = values.pop(time_field, None)
    if raw_time is None:
        return Record(values, received)
    try:
        return Record(values, float(raw_time))
    except ValueError:
        raise DecodeError(f"device time {raw_time!r} is not epoch seconds", field=time_field) from None


# ---------- events ----------


def _spec_for(key: str, specs: dict[str, FieldSpec], unknown: str) -> FieldSpec | None:
    spec = specs.get(key)
    if spec is None and unknown == "emit":
        return FieldSpec()
    return spec


def _base_event(state: DeviceState, key: str, spec: FieldSpec, kind: EventKind, data_class: DataClass,
                device_time: float, received: float, event_id: str, **extra) -> Event:
    return Event(
        event_id=event_id, kind=kind, data_class=data_class, device=state.device, stream=state.stream,
        seq=state.seq.next(), device_time=device_time, received_time=received,
        code_sent=spec.code or key, code_system_sent=spec.system, mdc_code=spec.mdc_code, unit_sent=spec.unit,
        source=state.source, location=state.location,
        provenance=Provenance(connector=state.connector, gateway=state.gateway, raw_ref=key), **extra,
    )


def value_event(state: DeviceState, key: str, raw: str, spec: FieldSpec, device_time: float, received: float,
                *, tag: str = "value", quality: frozenset[Quality] = frozenset()) -> Event:
    """One numeric / text / status reading. Raises DecodeError for a non-number in a numeric field."""
    event_id = make_event_id(state.device.id, key, device_time, raw, tag)
    if spec.kind == "numeric":
        try:
            value = float(raw)
        except ValueError:
            raise DecodeError(f"value {raw!r} is not a number", field=key) from None
        return _base_event(state, key, spec, EventKind.NUMERIC, spec.data_class or state.default_class,
                           device_time, received, event_id, value_sent=value, quality=quality)
    if spec.kind == "status":
        return _base_event(state, key, spec, EventKind.DEVICE_STATUS, spec.data_class or DataClass.STATUS,
                           device_time, received, event_id, value_sent=raw, status=raw, quality=quality)
    return _base_event(state, key, spec, EventKind.TEXT, spec.data_class or state.default_class,
                       device_time, received, event_id, value_sent=raw, text=raw, quality=quality)


def alarm_events(state: DeviceState, key: str, raw: str, spec: FieldSpec, device_time: float, received: float) -> list[Event]:
    """Alarm start / end when the condition in `key` changes (nothing while it stays the same)."""
    active = state.alarms.get(key)
    condition = None if raw.upper() in {v.upper() for v in spec.no_alarm} else raw
    if (active[0] if active else None) == condition:
        return []
    out = []
    if active is not None:
        out.append(_alarm(state, key, spec, active[0], active[1], AlarmState.INACTIVE, AlarmPhase.END,
                          device_time, received))
        del state.alarms[key]
    if condition is not None:
        state.alarms[key] = (condition, device_time)
        out.append(_alarm(state, key, spec, condition, device_time, AlarmState.ACTIVE, AlarmPhase.START,
                          device_time, received))
    return out


def _alarm(state: DeviceState, key: str, spec: FieldSpec, condition: str, since: float, alarm_state: AlarmState,
           phase: AlarmPhase, device_time: float, received: float) -> Event:
    alarm_id = make_event_id(state.device.id, key, condition, since)
    alarm = Alarm(condition=condition, priority=AlarmPriority(spec.alarm_priority), state=alarm_state,
                  phase=phase, alarm_id=alarm_id)
    return _base_event(state, key, spec.model_copy(update={"code": condition}), EventKind.ALARM,
                       spec.data_class or DataClass.ALARM, device_time, received,
                       make_event_id(alarm_id, phase.value), value_sent=condition, alarm=alarm)


def build_events(state: DeviceState, record: Record, settings, received: float) -> list[Event]:
    """Every key of one answer -> events; remembers fresh values for staleness. Raises DecodeError
    before emitting anything when one value is bad, so an answer is taken whole or not at all."""
    pending: list[tuple[str, FieldSpec, str]] = []
    for key, raw in record.values.items():
        spec = _spec_for(key, settings.fields, settings.unknown_fields)
        if spec is None:
            continue
        if spec.kind == "numeric":
            try:
                float(raw)
            except ValueError:
                raise DecodeError(f"value {raw!r} is not a number", field=key) from None
        pending.append((key, spec, raw))
    events: list[Event] = []
    for key, spec, raw in pending:
        if spec.kind == "alarm":
            events.extend(alarm_events(state, key, raw, spec, record.device_time, received))
            continue
        event = value_event(state, key, raw, spec, record.device_time, received)
        state.last_fresh[key] = (received, event)
        state.stale.discard(key)
        events.append(event)
    return events


def staleness_limits(rules: RuleSet) -> dict[DataClass, tuple[float, StalenessAction]]:
    return {dc: (p.staleness_limit_s, p.staleness_action)
            for dc, p in rules.sync_profiles.items() if p.staleness_limit_s}


def check_staleness(state: DeviceState, limits: dict[DataClass, tuple[float, StalenessAction]], now: float) -> list[Event]:
    """Values older than their class's limit: once per staleness episode, re-emit the last value
    flagged stale (flag-stale) or emit a missing marker (flag-missing)."""
    out: list[Event] = []
    for key, (fresh_at, last) in state.last_fresh.items():
        limit = limits.get(last.data_class)
        if limit is None or key in state.stale or now - fresh_at <= limit[0]:
            continue
        state.stale.add(key)
        if limit[1] is StalenessAction.FLAG_STALE:
            out.append(last.with_changes(
                event_id=make_event_id(last.event_id, "stale", now), seq=state.seq.next(), received_time=now,
                quality=last.quality | {Quality.STALE},
            ))
        else:
            out.append(last.with_changes(
                event_id=make_event_id(last.event_id, "missing", now), seq=state.seq.next(), device_time=now,
                received_time=now, value_sent=None, value=None, text=None, status=None,
                quality=frozenset({Quality.MISSING}),
            ))
    return out
