"""`devsync kafka init --bootstrap HOST:PORT [--rules PATH]`: create or check every topic.

Idempotent: missing topics are created with the partitions, replication, retention and
cleanup policy of the `kafka:` rules section; existing ones are checked (a partition
count that differs is an error, since faust tables need source and changelog to match).
Connection security comes from the environment (never the command line, which `ps`
shows): DEVSYNC_KAFKA_SECURITY_PROTOCOL, DEVSYNC_KAFKA_SSL_CAFILE, DEVSYNC_KAFKA_SSL_CERTFILE,
DEVSYNC_KAFKA_SSL_KEYFILE, DEVSYNC_KAFKA_SASL_MECHANISM, DEVSYNC_KAFKA_SASL_USERNAME,
DEVSYNC_KAFKA_SASL_PASSWORD.
"""

from __future__ import annotations

import argparse
import os
import sys

from pydantic import ValidationError

from hub.errors import HubError
from hub.logs import allow_patient_identifiers, configure_logging
from hub.rules.errors import RuleFileError
from hub.rules.load import load_rules
from hub.rules.models import RuleSet
from hub.runtime.kafka_settings import KafkaSettings, confluent_config
from hub.runtime.kafka_topics import ensure_topics, topic_specs

ENV_FIELDS = ("security_protocol", "ssl_cafile", "ssl_certfile", "ssl_keyfile", "sasl_mechanism", "sasl_username",
              "sasl_password")


def add_broker_arguments(parser: argparse.ArgumentParser) -> None:
    """--bootstrap and --rules, as every command that talks to Kafka takes them."""
    parser.add_argument("--bootstrap", required=True, metavar="HOST:PORT", help="Kafka bootstrap servers")
    parser.add_argument("--rules", default="rules", metavar="PATH", help="rule file or folder (default: rules)")


def add_log_level_argument(parser: argparse.ArgumentParser) -> None:
    """--log-level of a long-running command (start_command applies it)."""
    parser.add_argument("--log-level", default=os.environ.get("DEVSYNC_LOG_LEVEL", "INFO"),
                        help="devsync log level (default INFO, or DEVSYNC_LOG_LEVEL)")


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    add_broker_arguments(parser)
    parser.add_argument("--processing-guarantee", default="at_least_once", choices=("at_least_once", "exactly_once"),
                        help="at_least_once (tested here) or exactly_once (real Kafka cluster only; not tested here)")


def settings_from_args(args: argparse.Namespace) -> KafkaSettings:
    return settings_from_env(args.bootstrap, processing_guarantee=args.processing_guarantee)


def settings_from_env(bootstrap: str, **fields) -> KafkaSettings:
    """Connection settings: `bootstrap` and `fields`, plus TLS/SASL from DEVSYNC_KAFKA_* (never the command line)."""
    env = {f: os.environ[f"DEVSYNC_KAFKA_{f.upper()}"] for f in ENV_FIELDS if os.environ.get(f"DEVSYNC_KAFKA_{f.upper()}")}
    return KafkaSettings(bootstrap=bootstrap, **fields, **env)


def start_command(args: argparse.Namespace) -> RuleSet | None:
    """A long-running command's start: logging at --log-level, then the rules of --rules (their problems
    printed; None when invalid) with the rules' choice about patient identifiers in logs applied."""
    configure_logging(args.log_level)
    rules = load_or_report(args.rules)
    if rules is not None:
        allow_patient_identifiers(rules.runtime.log_patient_identifiers)
    return rules


def load_or_report(path: str) -> RuleSet | None:
    try:
        return load_rules(path)
    except RuleFileError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return None


def register(sub: argparse._SubParsersAction) -> None:
    kafka = sub.add_parser("kafka", help="Kafka runtime administration")
    actions = kafka.add_subparsers(dest="kafka_command", required=True, metavar="ACTION")
    init = actions.add_parser("init", help="create or check every topic (idempotent)")
    add_connection_arguments(init)
    init.set_defaults(func=run_init)


def run_init(args: argparse.Namespace) -> int:
    rules = load_or_report(args.rules)
    if rules is None:
        return 1
    try:
        settings = settings_from_args(args)
        report = ensure_topics(confluent_config(settings, rules.kafka), topic_specs(rules.kafka))
    except (HubError, ValidationError) as exc:
        print(f"devsync kafka init: {exc}", file=sys.stderr)
        return 1
    for spec in topic_specs(rules.kafka):
        state = "created" if spec.name in report.created else "ok"
        print(f"{state:8} {spec.name}  partitions={spec.partitions} replication={spec.replication} "
              + " ".join(f"{k}={v}" for k, v in spec.config.items()))
    return 0
