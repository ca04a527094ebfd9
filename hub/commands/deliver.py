"""`devsync deliver --bootstrap HOST:PORT --rules PATH`: the sinks of the Kafka runtime.

Reads `<prefix>.observations` (consumer group `<app_id>-deliver`) into the sinks the rules
configure, committing offsets only after the sinks and the ledger have everything
(hub/runtime/kafka_deliver.py). Stop with SIGINT/SIGTERM: the batch in hand is delivered and
committed, the sinks are closed, exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from pydantic import ValidationError

from hub.commands.kafka import add_broker_arguments, add_log_level_argument, settings_from_env, start_command
from hub.errors import HubError
from hub.logs import get_logger

log = get_logger("deliver")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("deliver", help="deliver the Kafka runtime's observations to the sinks (EHR)")
    add_broker_arguments(p)
    p.add_argument("--metrics-port", type=int, help="Prometheus port (default: rules runtime.metrics_port; 0 = off)")
    add_log_level_argument(p)
    p.set_defaults(func=deliver_command)


def deliver_command(args: argparse.Namespace) -> int:
    rules = start_command(args)
    if rules is None:
        return 1
    try:
        return asyncio.run(serve(rules, args))
    except (HubError, ValidationError) as exc:
        print(f"devsync deliver: {exc}", file=sys.stderr)
        return 1


async def serve(rules, args: argparse.Namespace) -> int:
    from confluent_kafka import Consumer

    from hub.health import broker_check, database_check, sink_checks, start_health_server
    from hub.runtime.kafka_deliver import Deliverer
    from hub.runtime.kafka_settings import confluent_config, consumer_config
    from hub.runtime.kafka_topics import TopicNames, ensure_topics, topic_specs
    from hub.sinks import build_sinks
    from hub.store import open_store

    settings = settings_from_env(args.bootstrap)  # TLS/SASL from DEVSYNC_KAFKA_*
    ensure_topics(confluent_config(settings, rules.kafka), topic_specs(rules.kafka))
    store = open_store(rules.runtime.database_url)
    sinks = build_sinks(rules, store)
    consumer = Consumer(consumer_config(settings, rules.kafka, f"{rules.kafka.app_id}-deliver"))
    deliverer = Deliverer(consumer, TopicNames.from_rules(rules.kafka).observations, sinks, store,
                          batch_max=rules.kafka.batch_max_events)
    health = start_health_server(rules.runtime.metrics_port if args.metrics_port is None else args.metrics_port,
                                 [broker_check(args.bootstrap, rules, measure_lag=False),
                                  database_check(rules.runtime.database_url), *sink_checks(rules)],
                                 rules=rules, required=False)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"devsync deliver: {deliverer.topic} -> {', '.join(s.name for s in sinks)}; SIGINT/SIGTERM to stop",
          flush=True)
    try:
        await deliverer.run(stop)
    finally:
        for sink in sinks:
            if hasattr(sink, "close"):
                await sink.close()
        await asyncio.to_thread(consumer.close)
        store.close()
        if health:
            health.stop()
    counts = deliverer.counts
    log.info("stopped", records=counts.records, observations=counts.observations, undecodable=counts.undecodable)
    print(f"devsync deliver: stopped cleanly after {counts.observations} observation(s), "
          f"{counts.undecodable} undecodable record(s) dead-lettered", flush=True)
    return 0
