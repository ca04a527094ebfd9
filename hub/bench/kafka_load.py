"""Load for `devsync bench kafka`: synthetic monitors and the raw broker baseline (relay)."""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import orjson
from confluent_kafka import Consumer, Producer

from hub.events import (Alarm, AlarmPhase, AlarmPriority, AlarmState, Association, DataClass, Device, Event,
                        EventKind, Provenance, make_event_id)
from hub.rules.load import load_rules
from hub.runtime.kafka_read import READER_FETCH_WAIT_S, assign_all

CODES = (("147842", "/min", 78.0), ("150456", "%", 96.0))  # heart rate, SpO2 (known to the default rules)


def bench_rules(folder: Path, source: str | Path):
    """A copy of the rules with a `kafka:` section of its own (fresh topics and consumer group)."""
    shutil.copytree(source, folder / "rules")
    tag = uuid.uuid4().hex[:8]
    (folder / "rules" / "kafka-bench.yaml").write_text(
        f"version: 1\nkafka:\n  prefix: bench{tag}\n  app_id: devsync-bench{tag}\n  partitions: 4\n")
    return folder / "rules", load_rules(folder / "rules")


def device_id(d: int) -> str:
    return f"BMON-{d:04d}"


def patient_of(d: int) -> str:
    return f"BENCHP{d // 2:05d}"  # two monitors per patient: they compete in stage 2


def bindings(devices: int, valid_from: float) -> list[Event]:
    out = []
    for d in range(devices):
        stream = f"adt/bench/{device_id(d)}"
        assoc = Association(action="bind", device_id=device_id(d), patient_id=patient_of(d), valid_from=valid_from)
        out.append(Event(event_id=make_event_id("bench-adt", device_id(d), valid_from), kind=EventKind.ASSOCIATION,
                         data_class=DataClass.ASSOCIATION, device=Device(id="ADT", type="adt-feed"), stream=stream,
                         seq=0, device_time=valid_from, received_time=valid_from, association=assoc,
                         provenance=Provenance(connector="bench")))
    return out


def numeric(d: int, code_index: int, seq: int, t: float, received: float) -> Event:
    code, unit, base = CODES[code_index]
    dev = device_id(d)
    return Event(event_id=make_event_id(dev, code, seq), kind=EventKind.NUMERIC, data_class=DataClass.VITAL,
                 device=Device(id=dev, type="multi-parameter-monitor"), stream=f"{dev}/{code}", seq=seq,
                 device_time=t, received_time=received, code_sent=code, code_system_sent="MDC",
                 value_sent=base + (seq % 7) - 3, unit_sent=unit, provenance=Provenance(connector="bench"))


def synthetic_events(count: int, devices: int, start: float) -> list[Event]:
    """Bindings, then `count` numeric events round-robin over devices x 2 streams, 1 Hz per stream."""
    events = bindings(devices, start - 3600)
    for i in range(count):
        d, slot = i % devices, i // devices
        seq = slot // 2
        events.append(numeric(d, slot % 2, seq, start + seq, start + seq))
    return events


def live_event(i: int, devices: int, now: float) -> list[Event]:
    """Event i of the steady run (received_time = publish time); every 100th also raises an alarm."""
    d, slot = i % devices, i // devices
    out = [numeric(d, slot % 2, slot // 2, now, now)]
    if i % 100 == 0:
        out.append(live_alarm(i, devices, now))
    return out


def live_alarm(i: int, devices: int, now: float) -> Event:
    dev = device_id(i % devices)
    return Event(
        event_id=make_event_id(dev, "alarm", i), kind=EventKind.ALARM, data_class=DataClass.ALARM,
        device=Device(id=dev, type="multi-parameter-monitor"), stream=f"{dev}/alarms", seq=i, device_time=now,
        received_time=now, alarm=Alarm(condition=f"MDC_EVT_BENCH_{i}", priority=AlarmPriority.HIGH,
                                       state=AlarmState.ACTIVE, phase=AlarmPhase.START, alarm_id=f"bench-{i}"),
        provenance=Provenance(connector="bench"))


_NUMERIC_TEMPLATES: dict[tuple[int, int], dict] = {}


def live_records(i: int, devices: int, now: float) -> list[tuple[bool, bytes, bytes]]:
    """live_event(i) encoded, as (is_alarm, key, JSON): the same JSON a connector publishes, built
    from a per-stream template. Building a validated Event per reading cost the load generator
    more CPU than the worker spends on it, on the machine the worker shares with it."""
    d, slot = i % devices, i // devices
    code_index, seq = slot % 2, slot // 2
    template = _NUMERIC_TEMPLATES.get((d, code_index))
    if template is None:
        template = _NUMERIC_TEMPLATES[(d, code_index)] = numeric(d, code_index, 0, 0.0, 0.0).model_dump(mode="json")
    code, _, base = CODES[code_index]
    reading = {**template, "event_id": make_event_id(template["device"]["id"], code, seq), "seq": seq,
               "device_time": now, "received_time": now, "value_sent": base + (seq % 7) - 3}
    out = [(False, template["stream"].encode(), orjson.dumps(reading))]
    if i % 100 == 0:
        alarm = live_alarm(i, devices, now)
        out.append((True, alarm.stream.encode(), alarm.to_json()))
    return out


def passthrough_rate(bootstrap: str, source: str, target: str, count: int) -> float:
    """relay() of `count` readings (bindings not counted), timed from the first record: events/s."""
    seen = 0
    started = None
    deadline = time.monotonic() + 300

    def counted(msg) -> None:
        nonlocal seen, started
        started = started or time.perf_counter()
        if msg.key() and not msg.key().startswith(b"adt/"):
            seen += 1

    relay({"bootstrap.servers": bootstrap}, [source], target,
          until=lambda: seen >= count or time.monotonic() > deadline, on_relayed=counted)
    elapsed = time.perf_counter() - (started or time.perf_counter())
    return seen / elapsed if elapsed > 0 else 0.0


def relay(base: dict, sources: list[str], target: str, *, until: Callable[[], bool],
          on_relayed: Callable | None = None, fetch_wait_s: float = READER_FETCH_WAIT_S) -> None:
    """The raw broker's share of a stage: consume -> produce (idempotent, acks=all) -> commit every
    second, no processing, until until(). Fetches wait at most as long as a worker's do."""
    consumer = Consumer({**base, "group.id": f"bench-pass-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "isolation.level": "read_committed",
                         "fetch.wait.max.ms": int(fetch_wait_s * 1000)})
    producer = Producer({**base, "enable.idempotence": True, "acks": "all", "linger.ms": 1})
    assign_all(consumer, sources)
    last_commit = time.monotonic()
    relayed = False  # since the last commit (committing nothing is an error)
    try:
        while not until():
            for msg in consumer.consume(2000, 0.05):
                if msg.error():
                    continue
                relayed = True
                while True:
                    try:
                        producer.produce(target, msg.value(), msg.key())
                        break
                    except BufferError:
                        producer.poll(0.01)
                if on_relayed is not None:
                    on_relayed(msg)
            producer.poll(0)
            if time.monotonic() - last_commit > 1.0 and relayed:
                producer.flush()
                consumer.commit(asynchronous=False)
                last_commit, relayed = time.monotonic(), False
        producer.flush()
        if relayed:
            consumer.commit(asynchronous=False)
    finally:
        consumer.close()
