"""`devsync edge`: run the edge gateway, or size its buffer.

    devsync edge --rules PATH --buffer FILE (--bootstrap HOST:PORT | --mqtt HOST:PORT)
    devsync edge size --rules PATH --hours 72 [--all-devices] [--beds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from hub.errors import HubError
from hub.rules.errors import RuleFileError
from hub.rules.load import load_rules


def register(sub: argparse._SubParsersAction) -> None:
    edge = sub.add_parser("edge", help="run the edge gateway (store-and-forward) or size its buffer")
    edge.add_argument("--rules", help="rule file or folder (devices[].gateway == edge.gateway_id run here)")
    edge.add_argument("--buffer", help="SQLite buffer file (created if missing)")
    target = edge.add_mutually_exclusive_group()
    target.add_argument("--bootstrap", metavar="HOST:PORT", help="forward to Kafka (topic edge.kafka_topic_prefix+events.raw)")
    target.add_argument("--mqtt", metavar="HOST:PORT", help="forward to an MQTT broker (QoS 1)")
    edge.add_argument("--health-port", type=int, help="override edge.health_port (0 = off)")
    edge.add_argument("--simulate", action="store_true",
                      help="instead of real connectors, emit synthetic traffic for this gateway's devices at their sizing rates")
    edge.add_argument("--simulate-rate-scale", type=float, default=1.0, help="multiply the simulated rates")
    edge.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR")
    edge.set_defaults(func=run_edge)
    actions = edge.add_subparsers(dest="edge_command", metavar="ACTION")
    size = actions.add_parser("size", help="print worst-case volume and disk for an outage from the device mix")
    size.add_argument("--rules", required=True, help="rule file or folder")
    size.add_argument("--hours", type=float, default=72.0, help="outage to cover (default 72)")
    size.add_argument("--all-devices", action="store_true", help="size every device in the rules, not only this gateway's")
    size.add_argument("--beds", type=int, help="scale the per-bed device mix to this many beds")
    size.set_defaults(func=run_size)


def _load(path: str):
    try:
        return load_rules(path)
    except RuleFileError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return None


def run_size(args: argparse.Namespace) -> int:
    from edge_buffer.sizing import format_sizing, select_devices, size_buffer

    rules = _load(args.rules)
    if rules is None:
        return 1
    known = sorted(t.name for t in rules.device_types)
    unknown = sorted(set(rules.edge.device_type_rates) - set(known))
    if unknown:
        print(f"{args.rules}: edge.device_type_rates: unknown device type(s) {', '.join(unknown)} "
              f"(known: {', '.join(known)})", file=sys.stderr)
        return 1
    devices = select_devices(rules, all_devices=args.all_devices)
    if not devices:
        print(f"{args.rules}: no device has gateway: {rules.edge.gateway_id} (edge.gateway_id); "
              "assign devices[].gateway or pass --all-devices", file=sys.stderr)
        return 1
    scope = "all devices" if args.all_devices else f"gateway {rules.edge.gateway_id}"
    beds = f", per-bed mix scaled to {args.beds} beds" if args.beds else ""
    sizing = size_buffer(rules, devices, args.hours, beds=args.beds)
    print(format_sizing(sizing, f"edge buffer sizing: {scope} ({len(devices)} devices{beds}), {args.hours:g} h outage"))
    return 0


def parse_hostport(text: str, option: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise HubError(f"{option} {text!r}: expected HOST:PORT, e.g. 127.0.0.1:9092")
    return host, int(port)


def run_edge(args: argparse.Namespace) -> int:
    missing = [opt for opt, value in (("--rules", args.rules), ("--buffer", args.buffer)) if not value]
    if missing or not (args.bootstrap or args.mqtt):
        print(f"devsync edge: needs {', '.join(missing + ([] if args.bootstrap or args.mqtt else ['--bootstrap or --mqtt']))}"
              " (or: devsync edge size --rules PATH)", file=sys.stderr)
        return 2
    from hub.logs import configure_logging

    configure_logging(args.log_level.upper())
    rules = _load(args.rules)
    if rules is None:
        return 1
    try:
        return asyncio.run(_serve(args, rules))
    except HubError as exc:
        print(f"devsync edge: {exc}", file=sys.stderr)
        return 1


async def _serve(args: argparse.Namespace, rules) -> int:
    from edge_buffer.gateway import Gateway, build_gateway_connectors, gateway_rules, serve_gateway
    from edge_buffer.traffic import SyntheticTraffic, streams_for_devices

    if args.bootstrap:
        from edge_buffer.upstream_kafka import KafkaUpstream

        parse_hostport(args.bootstrap, "--bootstrap")
        upstream = KafkaUpstream(args.bootstrap, rules.edge)
    else:
        from edge_buffer.upstream_mqtt import MqttUpstream

        upstream = MqttUpstream(*parse_hostport(args.mqtt, "--mqtt"), rules.edge)
    if args.simulate:
        narrowed = gateway_rules(rules)
        connectors = [SyntheticTraffic(streams_for_devices(narrowed, narrowed.devices), rate_scale=args.simulate_rate_scale)]
    else:
        connectors = build_gateway_connectors(rules)
    if not connectors:
        print(f"devsync edge: no device in the rules has gateway: {rules.edge.gateway_id}; forwarding the buffer only",
              file=sys.stderr)
    gateway = Gateway(rules, args.buffer, upstream, connectors, health_port=args.health_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    from prometheus_client import REGISTRY

    from hub.health import Check, loop_check, start_health_server

    health = start_health_server(
        rules.runtime.metrics_port, [Check("edge-buffer", lambda: gateway.health()["status"] != "down")],
        live=[loop_check(loop)], registries=[REGISTRY, gateway.metrics.registry], rules=rules,
        required=False)
    try:
        await serve_gateway(gateway, stop)
    finally:
        if health:
            health.stop()
    return 0
