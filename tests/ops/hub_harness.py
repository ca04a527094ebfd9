"""A hub process for the Prometheus test: the ward demo plus the operations wiring.

    python tests/ops/hub_harness.py --rules DIR --out DIR --duration 20 --health-port P \
        --mllp-port M --http-port H --poll-port CLOSED --mqtt-port 1883 [--bootstrap B --lag-topic T]

What it runs, all in one process so one scrape target carries every family of metrics:
  * `start_health_server` (hub/health.py) exactly as the long-running commands wire it: readiness
    checks for the database, every configured network sink, the connectors and (with --bootstrap)
    the Kafka broker with consumer-lag measurement; liveness on the connectors' event loop;
    the rules' latency budgets published as gauges,
  * real listener connectors (MLLP, HTTP, MQTT subscriber) and one poll-tcp pump pointed at a
    closed port, built by connectors.registry from the rules; what they emit is accepted and
    dropped (their metrics are the point),
  * `devsync demo` itself (hub.cli.main) with its own metrics server off (--metrics-port 0).
After the demo it keeps serving until SIGTERM, so Prometheus can be queried while it is up.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import threading
from pathlib import Path

from connectors.registry import build_connectors
from hub import cli
from hub.commands.demo import demo_rules
from hub.health import connectors_check, database_check, kafka_check, loop_check, sink_checks, start_health_server
from hub.rules.connectors import ConnectorRules, HttpListener, MllpListener, MqttSubscription
from hub.rules.load import load_rules


def listener_rules(rules, args):
    pump = next(d for d in rules.devices if d.type == "infusion-pump")
    pump = pump.model_copy(update={"connector": {"host": "127.0.0.1", "port": args.poll_port, "timeout_s": 1}})
    connectors = ConnectorRules(
        mllp=MllpListener(port=args.mllp_port),
        http=HttpListener(port=args.http_port, allow_anonymous=True),
        mqtt=MqttSubscription(port=args.mqtt_port, topics=[f"devsync-ops-test/{args.health_port}/+/events"],
                              client_id=f"devsync-ops-{args.health_port}"))
    return rules.model_copy(update={"devices": [pump], "connectors": connectors})


def start_connectors(rules, args) -> tuple[asyncio.AbstractEventLoop, list]:
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, name="connectors", daemon=True).start()
    connectors = build_connectors(listener_rules(rules, args))

    async def accept(event) -> None:
        return None

    async def start_all() -> None:
        for connector in connectors:
            await connector.start(accept)
    asyncio.run_coroutine_threadsafe(start_all(), loop).result(30)
    return loop, connectors


def main() -> int:
    p = argparse.ArgumentParser()
    for name in ("--rules", "--out"):
        p.add_argument(name, required=True)
    for name in ("--health-port", "--mllp-port", "--http-port", "--poll-port", "--mqtt-port"):
        p.add_argument(name, type=int, required=True)
    p.add_argument("--duration", default="20")
    p.add_argument("--bootstrap")
    p.add_argument("--lag-group", default="devsync-ops-lag")
    p.add_argument("--lag-topic")
    args = p.parse_args()

    rules = demo_rules(load_rules(args.rules), Path(args.out))
    loop, connectors = start_connectors(rules, args)
    checks = [database_check(rules.runtime.database_url), *sink_checks(rules), connectors_check(connectors)]
    if args.bootstrap:
        checks.append(kafka_check({"bootstrap.servers": args.bootstrap}, group=args.lag_group,
                                  topics=[args.lag_topic] if args.lag_topic else []))
    server = start_health_server(args.health_port, checks, live=[loop_check(loop)], rules=rules, refresh_s=1)
    print(f"health server at {server.url}", flush=True)
    code = cli.main(["demo", "--rules", args.rules, "--out", args.out, "--duration", args.duration,
                     "--metrics-port", "0", "--summary-every", "1000", "--log-level", "ERROR"])
    print(f"demo finished with {code}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    server.stop()
    return code


if __name__ == "__main__":
    sys.exit(main())
