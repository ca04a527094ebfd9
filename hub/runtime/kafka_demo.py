"""Running the demo ward through Kafka: workers as processes, events published in real time.

`run_demo_on_kafka` is what `devsync demo --bootstrap HOST:PORT` calls: it creates the
topics, starts `devsync worker` processes, publishes the ward's events at their send
offsets with the idempotent producer (the connectors' path), reads the observations and
audit records back (read_committed), dedupes them by event id / decision id, and hands
each observation to `on_observation` (the demo's sinks). The worker helpers here are
shared by the tests and `devsync bench kafka`.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import yaml

from hub.events import Event
from hub.logs import get_logger
from hub.rules.models import RuleSet
from hub.runtime.kafka_producer import KafkaPublisher, producer_config
from hub.runtime.kafka_read import ReadRecord, follow_topics
from hub.runtime.kafka_settings import KafkaSettings, confluent_config
from hub.runtime.kafka_topics import TopicNames, ensure_topics, topic_specs

log = get_logger("kafka.demo")
READY_LINE = b"rebalance complete"
STARTED_LINE = "worker started"  # after its I/O started (bindings read, outputs producer): batches run
EventsArg = list[tuple[float, Event]] | Callable[[float], list[tuple[float, Event]]]


@dataclass
class WorkerProcess:
    process: subprocess.Popen
    log_path: Path

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def ready_count(self) -> int:
        return self.log_text().count(READY_LINE.decode())

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, no commit (what the crash tests do)."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(30)

    def stop(self, timeout_s: float = 20.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def start_worker(bootstrap: str, rules_path: str | Path, log_path: str | Path) -> WorkerProcess:
    """`devsync worker` as a child process (its own session, so signals reach only it)."""
    log_file = open(log_path, "ab")  # noqa: SIM115 - owned by the child
    process = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "worker", "--bootstrap", bootstrap, "--rules", str(rules_path)],
        stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    log_file.close()
    return WorkerProcess(process, Path(log_path))


def wait_ready(worker: WorkerProcess, count: int = 1, timeout_s: float = 60.0) -> None:
    """Wait until the worker logged `count` completed rebalances (partitions assigned, tables
    recovered) and that it started (it takes batches from then on)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if worker.process.poll() is not None:
            raise RuntimeError(f"worker exited with {worker.process.returncode}: {worker.log_text()[-2000:]}")
        if worker.ready_count() >= count and STARTED_LINE in worker.log_text():
            return
        time.sleep(0.1)
    raise RuntimeError(f"worker not ready within {timeout_s}s: {worker.log_text()[-2000:]}")


async def publish_paced(bootstrap_config: dict, topic: str, events: list[tuple[float, Event]],
                        speed: float = 1.0, start_at: float | None = None, alarm_topic: str | None = None) -> float:
    """Publish each event at its send offset (divided by speed) from start_at (default: now); returns the start.
    Alarms go to alarm_topic when given (the alarm lane)."""
    publisher = KafkaPublisher(producer_config(bootstrap_config), topic, alarm_topic)
    if start_at is not None and start_at > time.time():
        await asyncio.sleep(start_at - time.time())
    started = start_at if start_at is not None else time.time()
    try:
        i = 0
        while i < len(events):
            now = time.time() - started
            due = []
            while i < len(events) and events[i][0] / speed <= now:
                due.append(events[i][1])
                i += 1
            if due:
                await publisher.publish_many(due)
            elif i < len(events):
                await asyncio.sleep(min(0.02, max(0.0, events[i][0] / speed - now)))
    finally:
        await asyncio.to_thread(publisher.close)
    return started


@dataclass
class KafkaDemoResult:
    observations: list[Event] = field(default_factory=list)  # deduped by event id, first arrival order
    audits: list[dict] = field(default_factory=list)  # deduped by decision id
    observation_records: int = 0  # raw records read, duplicates included
    audit_records: int = 0
    dlq_records: int = 0
    elapsed_s: float = 0.0
    start_time: float = 0.0  # wall time of send offset 0

    def summary(self) -> dict:
        return {"runtime": "kafka", "observations": len(self.observations), "decisions": len(self.audits),
                "observation_records": self.observation_records, "audit_records": self.audit_records,
                "dlq_records": self.dlq_records, "elapsed_s": round(self.elapsed_s, 3)}


class OutputCollector:
    """Dedupes what the workers produced: observations by event id, audit by decision id."""

    def __init__(self, names: TopicNames, on_observation=None):
        self.names = names
        self.on_observation = on_observation
        self.result = KafkaDemoResult()
        self.seen_events: set[str] = set()
        self.seen_decisions: set[str] = set()
        self.lock = threading.Lock()

    def add(self, record: ReadRecord) -> None:
        with self.lock:
            if record.topic in (self.names.observations, self.names.waveforms):
                self.result.observation_records += 1
                event = Event.from_json(record.value)
                if event.event_id not in self.seen_events:
                    self.seen_events.add(event.event_id)
                    self.result.observations.append(event)
                    if self.on_observation is not None:
                        self.on_observation(event)
            elif record.topic == self.names.audit:
                self.result.audit_records += 1
                audit = orjson.loads(record.value)
                if audit["decision_id"] not in self.seen_decisions:
                    self.seen_decisions.add(audit["decision_id"])
                    self.result.audits.append(audit)
            elif record.topic == self.names.dlq:
                self.result.dlq_records += 1


def write_rules(rules: RuleSet, folder: Path) -> Path:
    """The rule set as one YAML file the worker processes can load (round-trips exactly)."""
    folder.mkdir(parents=True, exist_ok=True)
    data = {"version": 1, **rules.model_dump(mode="json", by_alias=True)}
    (folder / "rules.yaml").write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return folder


def run_demo_on_kafka(rules: RuleSet, events: EventsArg, bootstrap: str, out_dir: str | Path, *,
                      rules_path: str | Path | None = None, workers: int = 1, settle_s: float = 12.0, speed: float = 1.0,
                      lead_s: float = 0.5, on_observation=None) -> KafkaDemoResult:
    """The demo ward through Kafka; writes out_dir/kafka-summary.json and returns the deduped outputs.

    `events`: (send offset, event) pairs, or a function start_time -> pairs that is called once the
    workers are ready, so that the ward's clock starts when publishing does (as for a live ward;
    `result.start_time` tells which start was used). `rules_path`: the rule folder the worker
    processes load; by default `rules` is written to out_dir/kafka-rules/rules.yaml."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rules_path = rules_path or write_rules(rules, out / "kafka-rules")
    base = confluent_config(KafkaSettings(bootstrap=bootstrap), rules.kafka)
    names = TopicNames.from_rules(rules.kafka)
    ensure_topics(base, topic_specs(rules.kafka))
    procs = [start_worker(bootstrap, rules_path, out / f"kafka-worker-{i}.log") for i in range(workers)]
    collector = OutputCollector(names, on_observation)
    stop = threading.Event()
    reader = threading.Thread(target=follow_topics, args=(base, [names.observations, names.waveforms, names.audit,
                                                                 names.dlq], collector.add),
                              kwargs={"stop": stop.is_set}, daemon=True)
    try:
        for proc in procs:
            wait_ready(proc)
        reader.start()
        start_at = time.time() + lead_s
        if callable(events):
            events = events(start_at)
        collector.result.start_time = start_at
        started = asyncio.run(publish_paced(base, names.raw, events, speed, start_at, names.alarms_raw))
        time.sleep(settle_s)
        collector.result.elapsed_s = time.time() - started
    finally:
        stop.set()
        reader.join(10)
        for proc in procs:
            proc.stop()
    (out / "kafka-summary.json").write_text(orjson.dumps(collector.result.summary(), option=orjson.OPT_INDENT_2).decode())
    log.info("kafka demo done", **collector.result.summary())
    return collector.result
