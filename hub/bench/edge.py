"""Edge gateway buffer: append and replay rates, bytes per event, 72-hour sizing of a unit.

Figures:
  edge_append_events_per_s          batched append (append_batch_max_events per commit), default durability
  edge_*_per_cpu_s                  the same work per CPU second of this process (steadier on a busy machine)
  edge_append_normal_events_per_s   the same at durability 'normal'
  edge_append_unbatched_events_per_s one event per commit, default durability (what group commit avoids)
  edge_replay_events_per_s          backlog -> real Kafka broker (acks=all, idempotent) -> rows deleted
  edge_replay_mqtt_events_per_s     backlog -> MQTT QoS 1 (only with --mqtt)
  edge_bytes_per_event              buffer file bytes (WAL checkpointed) / rows, typical mix
  edge_payload_bytes_per_event      event JSON bytes / rows, same mix
  edge_sizing_*                     `devsync edge size --hours H --beds B --all-devices` on --rules
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from edge_buffer.forwarder import Forwarder
from edge_buffer.metrics import EdgeMetrics
from edge_buffer.queue import EdgeQueue
from edge_buffer.sizing import select_devices, size_buffer
from edge_buffer.traffic import StreamSpec, build_event
from hub.bench import Figure
from hub.events import DataClass, Device, Event
from hub.rules.edge import Durability, EdgeRules
from hub.rules.load import load_rules

MIX = [(DataClass.VITAL, 80), (DataClass.TREND, 8), (DataClass.ALARM, 2), (DataClass.SETTING, 6), (DataClass.STATUS, 4)]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=int, default=100_000, help="events per append / replay run")
    parser.add_argument("--unbatched-events", type=int, default=2000, help="events for the one-commit-each figure")
    parser.add_argument("--bootstrap", help="Kafka HOST:PORT for the replay figure (default: start the test broker)")
    parser.add_argument("--mqtt", help="MQTT HOST:PORT: also measure replay over MQTT QoS 1")
    parser.add_argument("--rules", default="rules", help="rule folder for the sizing figures")
    parser.add_argument("--hours", type=float, default=72.0, help="outage the sizing figures cover")
    parser.add_argument("--beds", type=int, default=30, help="beds the rules' per-bed device mix is scaled to")


def make_events(n: int, seed: int = 1) -> list[Event]:
    rng = random.Random(seed)
    classes = [c for c, w in MIX for _ in range(w)]
    specs = {}
    out = []
    now = time.time() - 3600
    for i in range(n):
        bed = rng.randrange(30)
        cls = rng.choice(classes)
        key = (bed, cls)
        if key not in specs:
            device = Device(id=f"MON-{bed:02d}", type="multi-parameter-monitor", model="IntelliVue-MX800",
                            manufacturer="Philips", eui64=f"0600dc75000{bed:05x}")
            specs[key] = [StreamSpec(device, cls, 1.0, f"ICU2-BED{bed:02d}"), 0]
        spec = specs[key]
        event = build_event(spec[0], spec[1], now + i * 0.001, "bench")
        out.append(event.with_changes(provenance=event.provenance.model_copy(update={"gateway": "edge-bench"})))
        spec[1] += 1
    return out


def measure_append(events: list[Event], settings: EdgeRules, batch: int) -> tuple[float, EdgeQueue, float]:
    """(events/s wall clock, the filled queue, events per CPU second of this process)."""
    path = Path(tempfile.mkdtemp(prefix="edge-bench-")) / "buffer.db"
    queue = EdgeQueue(path, settings)
    started, cpu = time.perf_counter(), time.process_time()
    for i in range(0, len(events), batch):
        queue.append_many(events[i:i + batch])
    return len(events) / (time.perf_counter() - started), queue, len(events) / (time.process_time() - cpu)


def measure_replay(queue: EdgeQueue, upstream) -> tuple[float, float]:
    """Drain the queue through a real upstream with the gateway's forwarder: (events/s, events per CPU second
    of this process, librdkafka / paho threads included)."""
    executor = ThreadPoolExecutor(max_workers=1)

    async def drain() -> tuple[float, float]:
        loop = asyncio.get_running_loop()

        async def store(fn, *args):
            return await loop.run_in_executor(executor, fn, *args)

        forwarder = Forwarder(queue, store, upstream, queue.settings, EdgeMetrics())
        total = queue.rows
        started, cpu = time.perf_counter(), time.process_time()
        task = asyncio.create_task(forwarder.run())
        while queue.rows and not task.done():
            await asyncio.sleep(0.05)
        elapsed, cpu_used = time.perf_counter() - started, time.process_time() - cpu
        await forwarder.stop()
        await task
        await upstream.close()
        if queue.rows:
            raise RuntimeError(f"replay stopped with {queue.rows} rows left: {forwarder.last_error}")
        return total / elapsed, total / cpu_used

    try:
        return asyncio.run(drain())
    finally:
        executor.shutdown()


def run(args: argparse.Namespace) -> list[Figure]:
    events = make_events(args.events)
    settings = EdgeRules(gateway_id=f"bench-{uuid.uuid4().hex[:6]}", quota_bytes=None,
                         kafka_topic_prefix=f"bench-{uuid.uuid4().hex[:6]}.")
    figures = [Figure("edge_bench_load_average_1m", os.getloadavg()[0], "ratio")]  # noisy neighbours show here
    rate, queue, per_cpu = measure_append(events, settings, settings.append_batch_max_events)
    figures.append(Figure("edge_append_events_per_s", rate, "events/s"))
    figures.append(Figure("edge_append_events_per_cpu_s", per_cpu, "events/s"))
    normal, q2, _ = measure_append(events, settings.model_copy(update={"durability": Durability.NORMAL}),
                                   settings.append_batch_max_events)
    q2.close()
    figures.append(Figure("edge_append_normal_events_per_s", normal, "events/s"))
    single, q3, _ = measure_append(events[: args.unbatched_events], settings, 1)
    q3.close()
    figures.append(Figure("edge_append_unbatched_events_per_s", single, "events/s"))

    queue.compact()
    figures.append(Figure("edge_bytes_per_event", queue.file_bytes() / queue.rows, "bytes"))
    figures.append(Figure("edge_payload_bytes_per_event", queue.bytes / queue.rows, "bytes"))

    replay, replay_cpu = replay_kafka(queue, args)
    figures.append(Figure("edge_replay_events_per_s", replay, "events/s"))
    figures.append(Figure("edge_replay_events_per_cpu_s", replay_cpu, "events/s"))
    if args.mqtt:
        from edge_buffer.upstream_mqtt import MqttUpstream
        from hub.commands.edge import parse_hostport

        _, q4, _ = measure_append(events, settings, settings.append_batch_max_events)
        mqtt_rate, _ = measure_replay(q4, MqttUpstream(*parse_hostport(args.mqtt, "--mqtt"), settings))
        figures.append(Figure("edge_replay_mqtt_events_per_s", mqtt_rate, "events/s"))
    queue.close()
    figures += sizing_figures(args)
    return figures


def replay_kafka(queue: EdgeQueue, args: argparse.Namespace) -> tuple[float, float]:
    from edge_buffer.upstream_kafka import KafkaUpstream

    broker = None
    bootstrap = args.bootstrap
    if not bootstrap:
        from hub.testing.broker import start_broker

        broker = start_broker()
        bootstrap = broker.bootstrap
    try:
        return measure_replay(queue, KafkaUpstream(bootstrap, queue.settings))
    finally:
        if broker is not None:
            broker.stop()


def sizing_figures(args: argparse.Namespace) -> list[Figure]:
    rules = load_rules(args.rules)
    devices = select_devices(rules, all_devices=True)
    sizing = size_buffer(rules, devices, args.hours, beds=args.beds)
    tag = f"{args.hours:g}h_{args.beds}_beds"
    no_wave = [ln for ln in sizing.lines if ln.data_class is not DataClass.WAVEFORM]
    return [
        Figure(f"edge_sizing_{tag}_events", sizing.events, "events"),
        Figure(f"edge_sizing_{tag}_payload_bytes", sizing.payload_bytes, "bytes"),
        Figure(f"edge_sizing_{tag}_disk_bytes", sizing.disk_bytes, "bytes"),
        Figure(f"edge_sizing_{tag}_payload_bytes_without_waveforms", sum(ln.payload_bytes for ln in no_wave), "bytes"),
    ]
