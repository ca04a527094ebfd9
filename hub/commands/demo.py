"""`devsync demo`: a simulated ward through the whole pipeline to HL7 v2 and FHIR files.

Embedded runtime by default (no external services); `--bootstrap HOST:PORT` runs the same
ward through Kafka workers instead. Writes DIR/hl7v2/*.hl7, DIR/fhir/*.ndjson,
DIR/summary.json and the audit/ledger database DIR/devsync.db; prints a live summary and
serves Prometheus metrics while running.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import time
from pathlib import Path

from hub.logs import configure_logging, get_logger
from hub.rules.load import load_rules
from hub.rules.models import RuleSet
from hub.rules.sinks import FileSinkConfig

log = get_logger("demo")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run a simulated ward through the pipeline to HL7 v2 and FHIR files")
    p.add_argument("--rules", default="rules", help="rule file or folder (default: rules)")
    p.add_argument("--duration", type=float, default=30.0, help="simulated seconds of ward traffic (default 30)")
    p.add_argument("--out", default="demo-out", help="output folder (default demo-out)")
    p.add_argument("--seed", type=int, default=7, help="simulation seed (same seed, same ward)")
    p.add_argument("--bootstrap", help="run through Kafka at HOST:PORT instead of the embedded runtime")
    p.add_argument("--metrics-port", type=int, help="Prometheus port (default: rules runtime.metrics_port; 0 = off)")
    p.add_argument("--summary-every", type=float, default=3.0, help="seconds between live summaries")
    p.add_argument("--log-level", default="WARNING")
    p.set_defaults(func=run_demo_command)


def demo_rules(rules: RuleSet, out: Path) -> RuleSet:
    """The rules with the file sink pointed at the output folder (network sinks stay as configured)."""
    sinks = rules.sinks.model_copy(update={"files": FileSinkConfig(directory=str(out))})
    runtime = rules.runtime.model_copy(update={"database_url": f"sqlite:///{out / 'devsync.db'}"})
    return rules.model_copy(update={"sinks": sinks, "runtime": runtime})


def run_demo_command(args: argparse.Namespace) -> int:
    configure_logging(args.log_level)
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    rules = demo_rules(load_rules(args.rules), out)
    port = rules.runtime.metrics_port if args.metrics_port is None else args.metrics_port
    from hub.health import database_check, sink_checks

    metrics_url = start_metrics_server(port, [database_check(rules.runtime.database_url), *sink_checks(rules)], rules)
    from connectors.simulators.ward import generate_ward_events

    start = time.time()
    events = generate_ward_events(rules, args.duration, args.seed, start_time=start)
    print(f"DeviceSync Hub demo: {len(rules.devices)} devices in {len({d.location for d in rules.devices if d.location})} "
          f"beds, {len(events)} deliveries over {args.duration:g}s -> {out}/"
          + (f"; metrics at {metrics_url}" if metrics_url else ""))
    if args.bootstrap:
        summary = run_kafka_demo(rules, args, out)
        print(kafka_report(summary, out))
        return 0
    summary = asyncio.run(run_embedded_demo(rules, events, start, args.summary_every))
    report = finish_report(summary, out)
    print(report)
    return 0


def run_kafka_demo(rules: RuleSet, args: argparse.Namespace, out: Path) -> dict:
    """The same ward through Kafka workers; observations read back from devsync.observations
    (deduplicated by event id) go through the same sinks as the embedded demo."""
    from connectors.simulators.ward import generate_ward_events
    from hub.runtime.kafka_demo import run_demo_on_kafka
    from hub.sinks import build_sinks
    from hub.store import open_store

    result = run_demo_on_kafka(rules, lambda t0: generate_ward_events(rules, args.duration, args.seed, start_time=t0),
                               args.bootstrap, out)
    store = open_store(rules.runtime.database_url)
    sinks = build_sinks(rules, store)

    async def deliver() -> None:
        for event in result.observations:
            for sink in sinks:
                sink.add(event)
        for sink in sinks:
            await sink.flush()
            if hasattr(sink, "close"):
                await sink.close()

    asyncio.run(deliver())
    summary = result.summary()
    summary["sinks"] = {c.sink: {"in": c.total_in, **c.by_status} for c in store.counts()}
    store.close()
    return summary


def kafka_report(summary: dict, out: Path) -> str:
    hl7_files = len(list((out / "hl7v2").glob("*.hl7")))
    fhir_lines = sum(len(p.read_text().splitlines()) for p in (out / "fhir").glob("*.ndjson"))
    summary["outputs"] = {"hl7v2_messages": hl7_files, "fhir_resources": fhir_lines}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return "\n".join([
        "== Final report (Kafka runtime) " + "=" * 34,
        f"observations {summary['observations']} (raw records {summary['observation_records']}, deduplicated by "
        f"event id), decisions {summary['decisions']}, dead letters {summary['dlq_records']}",
        "per sink: " + "; ".join(f"{name} {counts}" for name, counts in summary["sinks"].items()),
        f"outputs: {hl7_files} HL7 v2 messages in {out}/hl7v2, {fhir_lines} FHIR resources in {out}/fhir",
        f"summary: {out}/summary.json"])


def start_metrics_server(port: int, checks=(), rules=None) -> str | None:
    """/metrics, /healthz and /readyz (hub/health.py) on `port`; None when off or the port is taken."""
    if not port:
        return None
    from hub.errors import HubError
    from hub.health import start_health_server

    try:
        server = start_health_server(port, checks, rules=rules)
    except HubError as exc:
        print(f"{exc}; metrics are off for this run (set --metrics-port)", file=sys.stderr)
        return None
    return f"{server.url}/metrics"


async def run_embedded_demo(rules: RuleSet, events, start: float, summary_every: float) -> dict:
    from hub.runtime.embedded import EmbeddedRuntime
    from hub.sinks import build_sinks
    from hub.store import open_store

    store = open_store(rules.runtime.database_url)
    sinks = build_sinks(rules, store)
    runtime = EmbeddedRuntime(rules, store=store, sinks=sinks)
    loop_task = asyncio.create_task(runtime.run())

    async def feed() -> None:
        for offset, event in events:
            delay = start + offset - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await runtime.emit(event)

    async def live() -> None:
        while True:
            await asyncio.sleep(summary_every)
            print(runtime.summary.render(time.time() - start), flush=True)

    live_task = asyncio.create_task(live())
    await feed()
    await runtime.stop()
    await loop_task
    live_task.cancel()
    await runtime.finish()
    for sink in sinks:
        if hasattr(sink, "close"):
            await sink.close()
    summary = runtime.summary.as_dict()
    summary["sinks"] = {c.sink: {"in": c.total_in, **c.by_status} for c in store.counts()}
    store.close()
    return summary


def finish_report(summary: dict, out: Path) -> str:
    hl7_files = len(list((out / "hl7v2").glob("*.hl7")))
    fhir_lines = sum(len(p.read_text().splitlines()) for p in (out / "fhir").glob("*.ndjson"))
    summary["outputs"] = {"hl7v2_messages": hl7_files, "fhir_resources": fhir_lines}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    lat = summary.get("latency_received_to_out_s", {})
    lines = ["== Final report " + "=" * 50,
             f"events in by class:  {summary['events_in']}",
             f"events out by class: {summary['events_out']}",
             f"duplicates dropped {summary['duplicates_dropped']}, reordered {summary['reordered']}, "
             f"late {summary['late']}, parked {summary['parked']} (released {summary['released_from_parking']}, "
             f"still parked {summary['parked_now']}), dead-lettered {summary['dlq']}",
             f"conflicts resolved by policy: {summary['conflicts_resolved_by_policy']}; "
             f"flagged for review {summary['flagged_for_review']}",
             "latency received->out: " + ", ".join(
                 f"{dc} p50 {v['p50'] * 1000:.0f} ms / p99 {v['p99'] * 1000:.0f} ms" for dc, v in lat.items()
                 if v["p50"] is not None),
             "per sink (in = delivered + held by charting + dlq): " + "; ".join(
                 f"{name} {counts}" for name, counts in summary.get("sinks", {}).items()),
             f"outputs: {hl7_files} HL7 v2 messages in {out}/hl7v2, {fhir_lines} FHIR resources in {out}/fhir",
             f"summary: {out}/summary.json"]
    return "\n".join(lines)
