"""`devsync run`: run the hub with every connector the rules declare, until SIGINT/SIGTERM.

Embedded runtime by default (connectors -> stages -> sinks in one process, audit and ledger in
`runtime.database_url`); with `--bootstrap` the connectors publish to Kafka
(`devsync.events.raw`) and `devsync worker` processes do the stages. On a signal: stop taking
input (connectors stop, acknowledging only what was accepted), drain every held event, flush
the sinks and the store, exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

from hub.logs import configure_logging, get_logger
from hub.rules.load import load_rules

log = get_logger("run")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the hub with every connector the rules declare")
    p.add_argument("--rules", required=True, help="rule file or folder")
    p.add_argument("--bootstrap", help="publish to Kafka at HOST:PORT (workers do the stages)")
    p.add_argument("--mllp-port", type=int, help="override connectors.mllp.port")
    p.add_argument("--http-port", type=int, help="override connectors.http.port")
    p.add_argument("--out", help="also write outputs in the demo layout (DIR/hl7v2, DIR/fhir)")
    p.add_argument("--metrics-port", type=int, help="Prometheus port (default: rules runtime.metrics_port; 0 = off)")
    p.add_argument("--log-level", default="INFO")
    p.set_defaults(func=run_command)


def connector_overrides(args: argparse.Namespace) -> dict:
    overrides: dict = {}
    if args.mllp_port is not None:
        overrides["mllp"] = {"port": args.mllp_port}
    if args.http_port is not None:
        overrides["http"] = {"port": args.http_port}
    return overrides


def run_command(args: argparse.Namespace) -> int:
    configure_logging(args.log_level)
    rules = load_rules(args.rules)
    if args.out:
        from hub.commands.demo import demo_rules

        Path(args.out).mkdir(parents=True, exist_ok=True)
        sinks = rules.sinks.model_copy(update={"files": demo_rules(rules, Path(args.out)).sinks.files})
        rules = rules.model_copy(update={"sinks": sinks})
    return asyncio.run(serve(rules, args))


async def serve(rules, args: argparse.Namespace) -> int:
    from connectors.registry import build_connectors

    connectors = build_connectors(rules, overrides=connector_overrides(args))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    from hub.health import broker_check, connectors_check, database_check, loop_check, sink_checks, start_health_server

    checks = [connectors_check(connectors)]
    checks += ([broker_check(args.bootstrap, rules, measure_lag=False)] if args.bootstrap
               else [database_check(rules.runtime.database_url), *sink_checks(rules)])
    health = start_health_server(rules.runtime.metrics_port if args.metrics_port is None else args.metrics_port,
                                 checks, live=[loop_check(loop)], rules=rules, required=False)
    if args.bootstrap:
        from hub.commands.kafka import settings_from_env
        from hub.runtime.kafka_producer import KafkaPublisher, producer_config
        from hub.runtime.kafka_settings import confluent_config
        from hub.runtime.kafka_topics import TopicNames

        settings = settings_from_env(args.bootstrap)
        names = TopicNames.from_rules(rules.kafka)
        publisher = KafkaPublisher(producer_config(confluent_config(settings, rules.kafka)), names.raw,
                                   alarm_topic=names.alarms_raw)
        emit = publisher.publish  # returns once the broker acknowledged (acks=all): then the device is ACKed

        async def finish() -> None:
            await asyncio.to_thread(publisher.close)
        runtime_task = None
    else:
        from hub.runtime.embedded import EmbeddedRuntime
        from hub.sinks import build_sinks
        from hub.store import open_store

        store = open_store(rules.runtime.database_url)
        sinks = build_sinks(rules, store)
        runtime = EmbeddedRuntime(rules, store=store, sinks=sinks)
        runtime_task = asyncio.create_task(runtime.run())
        emit = runtime.emit

        async def finish() -> None:
            await runtime.stop()
            await runtime_task
            await runtime.finish()
            for sink in sinks:
                if hasattr(sink, "close"):
                    await sink.close()
            store.close()
    for connector in connectors:
        await connector.start(emit)
        log.info("connector started", connector=connector.name)
    print(f"devsync run: {len(connectors)} connector(s) up: {', '.join(c.name for c in connectors)}; "
          "SIGINT/SIGTERM to stop", flush=True)
    await stop.wait()
    log.info("stopping: connectors first, then drain")
    for connector in connectors:
        await connector.stop()
    result = finish()
    if asyncio.iscoroutine(result):
        await result
    if health:
        health.stop()
    print("devsync run: stopped cleanly", flush=True)
    return 0
