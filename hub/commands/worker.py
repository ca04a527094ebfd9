"""`devsync worker --bootstrap HOST:PORT --rules PATH`: run one Kafka processor worker.

Runs both stages (stage 1 keyed by device stream, stage 2 keyed by patient) as a faust
worker in this process. Start as many as there are partitions (kafka.partitions); they
share the partitions through the consumer group `kafka.app_id`. Topics are created or
checked first. Stop with SIGTERM/SIGINT (state is in the changelog topics either way).
"""

from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError

from hub.commands.kafka import add_connection_arguments, add_log_level_argument, settings_from_args, start_command
from hub.errors import HubError


def register(sub: argparse._SubParsersAction) -> None:
    worker = sub.add_parser("worker", help="run a Kafka processor worker (both stages)")
    add_connection_arguments(worker)
    add_log_level_argument(worker)
    worker.set_defaults(func=run_worker)


def run_worker(args: argparse.Namespace) -> int:
    rules = start_command(args)
    if rules is None:
        return 1
    from hub.runtime.kafka_app import KafkaWorker  # faust is heavy: import only when running

    try:
        worker = KafkaWorker(rules, settings_from_args(args))
        worker.ensure_topics()
    except (HubError, ValidationError) as exc:
        print(f"devsync worker: {exc}", file=sys.stderr)
        return 1
    from hub.health import broker_check, start_health_server

    start_health_server(rules.runtime.metrics_port, [broker_check(args.bootstrap, rules)], rules=rules,
                        required=False)
    worker.run()
    return 0
