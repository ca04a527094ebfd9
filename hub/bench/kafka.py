"""Kafka runtime throughput and latency, against a raw confluent-kafka passthrough on the same broker.

Figures (one run, same broker, same event set):
  kafka_passthrough_events_per_s         consume raw -> produce -> commit, confluent-kafka, no stages
  kafka_pipeline_events_per_s_1_worker   both stages, one `devsync worker` process, backlog drained
  kafka_pipeline_events_per_s_2_workers  the same with two worker processes sharing the partitions
  kafka_pipeline_ratio                   1-worker pipeline / passthrough
  alarm_latency_p50_s, alarm_latency_p99_s, vital_latency_p99_s
                                         publish -> observation read back, at a steady offered rate
                                         (--rate, default 10,000 events/s) with alarms mixed in;
                                         vitals include their resolution window and grace (by design)
  latency_offered_rate_events_per_s, latency_delivered_rate_events_per_s
  ..._low_rate                           the same latency figures at --low-rate (default 2,000
                                         events/s), a rate one worker keeps up with
  passthrough_latency_p50_s, passthrough_latency_p99_s
                                         the raw broker's floor under those latencies, in the same run:
                                         the same publishing, two confluent-kafka relays (raw ->
                                         normalized -> observations: the two stages' hops, no
                                         processing) and the same reader
Throughput: the workers first take one reading per stream and stop (each stream's first reading
waits its reorder window, a start-up effect that would otherwise hold the whole backlog behind
it; the streams' state is then in the changelogs). The backlog is published, the workers start
again, and the figure is its size divided by the time from the workers being ready until stage 2
has it all: every event read back from the normalized topics (stage 1 writes each event there
once), and the group's committed offsets past the last of those records (stage 2 took them;
commits every kafka.commit_interval_s: up to one interval of slack). Ends are taken from the
records read, not from the broker's high watermarks, which the test broker reports up to a
producer batch short.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import threading
import time
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from hub.bench import Figure, percentile
from hub.bench.kafka_load import bench_rules, passthrough_rate, relay, synthetic_events
from hub.events import Event, EventKind
from hub.runtime.kafka_demo import start_worker, wait_ready
from hub.runtime.kafka_producer import KafkaPublisher, producer_config
from hub.runtime.kafka_read import follow_topics
from hub.runtime.kafka_topics import TopicNames, ensure_topics, topic_specs
from hub.testing.broker import start_broker


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bootstrap", metavar="HOST:PORT", help="broker to use (default: start a local test broker)")
    parser.add_argument("--rules", default="rules", help="rule folder the workers run (default: rules)")
    parser.add_argument("--events", type=int, default=100_000, help="events per throughput run (default 100,000)")
    parser.add_argument("--devices", type=int, default=200, help="simulated monitors, 2 streams each (default 200)")
    parser.add_argument("--rate", type=float, default=10_000.0, help="offered rate of the latency run (events/s)")
    parser.add_argument("--low-rate", type=float, default=2_000.0,
                        help="offered rate of a second latency run, below one worker's capacity (events/s; 0: none)")
    parser.add_argument("--latency-seconds", type=float, default=10.0, help="length of each latency run (s)")


def run(args: argparse.Namespace) -> list[Figure]:
    broker = None if args.bootstrap else start_broker()
    bootstrap = args.bootstrap or broker.bootstrap
    work = Path(tempfile.mkdtemp(prefix="devsync-bench-kafka-"))
    try:
        passthrough = measure_passthrough(bootstrap, args, work)
        one = measure_pipeline(bootstrap, args, work, workers=1)
        two = measure_pipeline(bootstrap, args, work, workers=2)
        latency = measure_latency(bootstrap, args, work, args.rate)
        floor = measure_passthrough_latency(bootstrap, args, work, args.rate)
        if args.low_rate:
            latency += measure_latency(bootstrap, args, work, args.low_rate, "_low_rate")
            floor += measure_passthrough_latency(bootstrap, args, work, args.low_rate, "_low_rate")
    finally:
        if broker is not None:
            broker.stop()
    return [
        Figure("kafka_passthrough_events_per_s", passthrough, "events/s"),
        Figure("kafka_pipeline_events_per_s_1_worker", one, "events/s"),
        Figure("kafka_pipeline_events_per_s_2_workers", two, "events/s"),
        Figure("kafka_pipeline_ratio", one / passthrough if passthrough else 0.0, "ratio"),
        *latency,
        *floor,
    ]


def preload(bootstrap: str, topic: str, events) -> None:
    async def go():
        publisher = KafkaPublisher(producer_config({"bootstrap.servers": bootstrap}), topic)
        for i in range(0, len(events), 5000):
            await publisher.publish_many(events[i:i + 5000])
        await asyncio.to_thread(publisher.close)

    asyncio.run(go())


def measure_passthrough(bootstrap: str, args, work: Path) -> float:
    rules_dir, rules = bench_rules(work / "passthrough", args.rules)
    names = TopicNames.from_rules(rules.kafka)
    ensure_topics({"bootstrap.servers": bootstrap}, topic_specs(rules.kafka))
    preload(bootstrap, names.raw, synthetic_events(args.events, args.devices, time.time() - 3600))
    return passthrough_rate(bootstrap, names.raw, names.normalized, args.events)


def measure_pipeline(bootstrap: str, args, work: Path, workers: int) -> float:
    rules_dir, rules = bench_rules(work / f"pipeline-{workers}", args.rules)
    names = TopicNames.from_rules(rules.kafka)
    base = {"bootstrap.servers": bootstrap}
    ensure_topics(base, topic_specs(rules.kafka))
    events = synthetic_events(args.events, args.devices, time.time() - 3600)
    warm_up = args.devices + 2 * args.devices  # the bindings, then one reading per stream
    preload(bootstrap, names.raw, events[:warm_up])
    through = LineCounter(base, [names.normalized, names.alarms_normalized])
    procs = []
    try:
        procs = start_workers(bootstrap, rules_dir, work / f"pipeline-{workers}-warm-up", workers)
        through.wait_for(2 * args.devices, timeout_s=120)
        wait_committed(base, rules.kafka.app_id, through.ends, timeout_s=120)
        for proc in procs:
            proc.stop()
        preload(bootstrap, names.raw, events[warm_up:])
        procs = start_workers(bootstrap, rules_dir, work / f"pipeline-{workers}", workers)
        started = time.perf_counter()
        through.wait_for(args.events, timeout_s=600)
        wait_committed(base, rules.kafka.app_id, through.ends, timeout_s=600)
        return (args.events - 2 * args.devices) / (time.perf_counter() - started)
    finally:
        through.stop()
        for proc in procs:
            proc.stop()


def wait_committed(base: dict, group: str, ends: dict[tuple[str, int], int], timeout_s: float) -> None:
    """Until the group's committed offsets reach `ends` (one OffsetFetch per look)."""
    consumer = Consumer({**base, "group.id": group, "enable.auto.commit": False})
    try:
        parts = [TopicPartition(topic, partition) for topic, partition in dict(ends)]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            committed = {(c.topic, c.partition): c.offset for c in consumer.committed(parts, timeout=10)}
            if all(committed.get(key, -1) >= end for key, end in ends.items()):
                return
            time.sleep(0.05)
        raise TimeoutError(f"group {group} did not commit past the records read within {timeout_s}s")
    finally:
        consumer.close()


def start_workers(bootstrap: str, rules_dir: Path, log_prefix: Path, count: int) -> list:
    procs = [start_worker(bootstrap, rules_dir, f"{log_prefix}-{i}.log") for i in range(count)]
    for proc in procs:
        wait_ready(proc, timeout_s=120)
    return procs


class LineCounter:
    """Counts the events stage 1 has written to the normalized topics (one JSON line each)."""

    def __init__(self, base: dict, topics: list[str]):
        self.count = 0
        self.ends: dict[tuple[str, int], int] = {}  # (topic, partition) -> offset after the last record read
        self._stop = threading.Event()
        self._thread = threading.Thread(target=follow_topics, args=(base, topics, self._on_record),
                                        kwargs={"stop": self._stop.is_set}, daemon=True)
        self._thread.start()

    def _on_record(self, record) -> None:
        self.ends[(record.topic, record.partition)] = record.offset + 1
        self.count += record.value.count(b"\n") + 1

    def wait_for(self, count: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while self.count < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"stage 1 wrote {self.count} of {count} events within {timeout_s}s")
            time.sleep(0.02)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def measure_latency(bootstrap: str, args, work: Path, rate: float, suffix: str = "") -> list[Figure]:
    """One worker under a steady offered rate: publish -> observation read back (figures + suffix)."""
    def start_worker_side(base: dict, names: TopicNames, rules_dir: Path):
        proc = start_worker(bootstrap, rules_dir, work / f"latency{suffix}.log")
        try:
            wait_ready(proc, timeout_s=120)
        except BaseException:
            proc.stop()
            raise
        return proc.stop

    # the last vitals wait for their resolution window and grace
    latencies, delivered_rate = steady_run(bootstrap, args, work / f"latency{suffix}", rate, start_worker_side, 12.0)
    return [
        Figure(f"alarm_latency_p50_s{suffix}", percentile(latencies["alarm"], 50), "s"),
        Figure(f"alarm_latency_p99_s{suffix}", percentile(latencies["alarm"], 99), "s"),
        Figure(f"vital_latency_p99_s{suffix}", percentile(latencies["vital"], 99), "s"),
        Figure(f"latency_offered_rate_events_per_s{suffix}", rate, "events/s"),
        Figure(f"latency_delivered_rate_events_per_s{suffix}", delivered_rate, "events/s"),
    ]


def measure_passthrough_latency(bootstrap: str, args, work: Path, rate: float, suffix: str = "") -> list[Figure]:
    """The same steady publishing through two raw relays (the stages' two hops, no processing)."""
    def start_relays(base: dict, names: TopicNames, rules_dir: Path):
        stop = threading.Event()
        relays = [threading.Thread(target=relay, args=(base, sources, target), kwargs={"until": stop.is_set},
                                   daemon=True)
                  for sources, target in (([names.raw, names.alarms_raw], names.normalized),
                                          ([names.normalized], names.observations))]
        for thread in relays:
            thread.start()

        def stop_relays() -> None:
            stop.set()
            for thread in relays:
                thread.join(10)
        return stop_relays

    latencies, _ = steady_run(bootstrap, args, work / f"passthrough-latency{suffix}", rate, start_relays, 2.0)
    every = latencies["alarm"] + latencies["vital"]
    return [Figure(f"passthrough_latency_p50_s{suffix}", percentile(every, 50), "s"),
            Figure(f"passthrough_latency_p99_s{suffix}", percentile(every, 99), "s")]


def steady_run(bootstrap: str, args, folder: Path, rate: float, start_side, settle_s: float):
    """Fresh topics; `start_side(base, names, rules_dir)` starts what processes them and returns
    its stop; then args.latency_seconds of publish_steady at `rate`, the observations read back
    until settle_s after the last publish: (latencies by kind, the rate delivered)."""
    rules_dir, rules = bench_rules(folder, args.rules)
    names = TopicNames.from_rules(rules.kafka)
    base = {"bootstrap.servers": bootstrap}
    ensure_topics(base, topic_specs(rules.kafka))
    latencies: dict[str, list[float]] = {"alarm": [], "vital": []}
    stop = threading.Event()
    reader = threading.Thread(target=follow_topics, args=(base, [names.observations], latencies_into(latencies)),
                              kwargs={"stop": stop.is_set}, daemon=True)
    stop_side = start_side(base, names, rules_dir)
    try:
        reader.start()
        delivered_rate = asyncio.run(publish_steady(bootstrap, names, args.devices, rate,
                                                    int(rate * args.latency_seconds)))
        time.sleep(settle_s)
    finally:
        stop.set()
        if reader.is_alive():
            reader.join(10)
        stop_side()
    return latencies, delivered_rate


def latencies_into(latencies: dict[str, list[float]]):
    """A reader's on_record: publish -> read back (s) of each alarm and reading, by kind (bindings
    are left out: they were published an hour back on purpose)."""
    def on_record(record) -> None:
        arrived = time.time()
        event = Event.from_json(record.value)
        if event.kind is EventKind.ALARM:
            latencies["alarm"].append(arrived - event.received_time)
        elif event.kind is not EventKind.ASSOCIATION:
            latencies["vital"].append(arrived - event.received_time)

    return on_record


async def publish_steady(bootstrap: str, names: TopicNames, devices: int, rate: float, total: int) -> float:
    """Publish `total` readings at `rate` in 10 ms slices, stamping received_time at publish, alarms to the alarm
    lane as `devsync run` does; returns the achieved rate."""
    from hub.bench.kafka_load import bindings, live_records

    publisher = KafkaPublisher(producer_config({"bootstrap.servers": bootstrap}, linger_ms=1), names.raw,
                               names.alarms_raw)
    await publisher.publish_many(bindings(devices, time.time() - 3600))
    lanes = {False: names.raw, True: names.alarms_raw}
    started = time.time()
    sent = 0
    pending = []
    while sent < total:
        due = min(total, int((time.time() - started) * rate) + 1)
        now = time.time()
        batch = [(lanes[alarm], key, value) for i in range(sent, due)
                 for alarm, key, value in live_records(i, devices, now)]
        sent = due
        if batch:
            pending.append(asyncio.ensure_future(publisher.publish_encoded(batch)))
        await asyncio.sleep(0.01)
    await asyncio.gather(*pending)
    rate = total / (time.time() - started)
    await asyncio.to_thread(publisher.close)
    return rate
