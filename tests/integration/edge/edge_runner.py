"""A gateway process for the crash test: the real Gateway, KafkaUpstream and buffer, fed by a
synthetic burst connector that writes each acknowledged event id to --ack-log (after emit returned).

    python edge_runner.py --buffer B --bootstrap HOST:PORT --topic-prefix P --burst 32 --ack-log FILE
    python edge_runner.py --buffer B --bootstrap HOST:PORT --topic-prefix P --until-drained
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from edge_buffer.gateway import Gateway
from edge_buffer.traffic import StreamSpec, SyntheticTraffic
from edge_buffer.upstream_kafka import KafkaUpstream
from hub.events import DataClass, Device
from hub.logs import configure_logging
from hub.rules.edge import EdgeRules
from hub.rules.models import RuleSet


def streams() -> list[StreamSpec]:
    out = []
    for n in range(6):
        device = Device(id=f"MON-{n:02d}", type="multi-parameter-monitor")
        out += [StreamSpec(device, cls, 1.0, f"ICU1-BED{n:02d}") for cls in (DataClass.VITAL, DataClass.ALARM, DataClass.WAVEFORM)]
    return out


async def main(args: argparse.Namespace) -> int:
    settings = EdgeRules(gateway_id="crash", health_port=0, kafka_partitions=3, kafka_topic_prefix=args.topic_prefix,
                         backoff_initial_s=0.2, backoff_max_s=1.0, ack_timeout_s=10.0, append_batch_max_events=200)
    connectors = []
    if args.burst:
        ack_log = open(args.ack_log, "a", buffering=1)  # noqa: SIM115, ASYNC230 - one write() per line, kept open until kill -9
        connectors.append(SyntheticTraffic(streams(), burst_concurrency=args.burst, run_id=args.run_id, ack_log=ack_log))
    gateway = Gateway(RuleSet(edge=settings), args.buffer, KafkaUpstream(args.bootstrap, settings), connectors)
    await gateway.start()
    print("started", flush=True)
    try:
        while True:
            await asyncio.sleep(0.1)
            if args.until_drained and gateway.queue.rows == 0 and gateway.queue.leased == 0:
                return 0
    finally:
        await gateway.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--buffer", required=True)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic-prefix", required=True)
    parser.add_argument("--burst", type=int, default=0)
    parser.add_argument("--ack-log")
    parser.add_argument("--run-id", default="r1")
    parser.add_argument("--until-drained", action="store_true")
    configure_logging("WARNING")
    sys.exit(asyncio.run(main(parser.parse_args())))
