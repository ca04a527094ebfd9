"""Connector ingest: PCD-01 over MLLP (1 and 8 connections, ACK latency) and MQTT ingest.

The MLLP listener runs here, in this process's event loop, pinned to one core when the machine
has two or more; the device side (plain sockets, pre-built PCD-01 ORU^R01 messages, each with
its own MSH-10 and times) runs in a separate process pinned to another core, so the sender does
not steal the listener's core. Every message waits for its ACK before the next one on that
connection (as MLLP devices do). emit() counts events (the connector alone is measured).
`mllp_listener_msgs_per_cpu_s` divides messages by the listener process's CPU seconds: the rate one
core sustains, which shared or loaded machines do not distort as much as wall-clock rates.
MQTT: connectors.mqtt_bench.measure_mqtt_ingest(n) when that module exists.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import socket
import time
from pathlib import Path

from hub.bench import Figure, percentile

SAMPLE = (Path(__file__).resolve().parents[2].parent / "shared" / "data" / "hl7v2"
          / "ihe_pcd01_philips_physio_monitor.hl7")  # IHE PCD TF-2 Rev 9.0 example, (c) IHE International
EVENTS_PER_MESSAGE = 10


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--messages", type=int, default=6000, help="PCD-01 messages per MLLP run (default 6000)")
    parser.add_argument("--mqtt-messages", type=int, default=5000, help="messages for the MQTT figure")
    parser.add_argument("--sample", default=str(SAMPLE), help="PCD-01 message used as the template")


def build_messages(n: int, prefix: str, sample: str | Path = SAMPLE) -> list[bytes]:
    """n framed Philips PCD-01 messages with their own control ids and observation times."""
    template = Path(sample).read_bytes().decode("latin-1")
    out = []
    for i in range(n):
        stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(1_600_000_000 + i))
        text = template.replace("HP0122182658686QQ000CND119C0WS61", f"{prefix}{i}")
        text = text.replace("|20150122182656\r", f"|{stamp}\r").replace("|20150122115000", f"|{stamp}")
        out.append(b"\x0b" + text.encode("latin-1") + b"\x1c\r")
    return out


def _read_ack(sock: socket.socket, buffer: bytearray) -> bytes:
    while True:
        end = buffer.find(b"\x1c\r")
        if end >= 0:
            ack = bytes(buffer[: end + 2])
            del buffer[: end + 2]
            return ack
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("listener closed the connection")
        buffer += chunk


def _connection(port: int, messages: list[bytes], latencies: list[float] | None) -> int:
    rejected = 0
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buffer = bytearray()
        for message in messages:
            started = time.perf_counter()
            sock.sendall(message)
            ack = _read_ack(sock, buffer)
            if latencies is not None:
                latencies.append(time.perf_counter() - started)
            if b"MSA|AA|" not in ack:
                rejected += 1
    return rejected


async def _async_connection(port: int, messages: list[bytes]) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    rejected = 0
    for message in messages:
        writer.write(message)
        ack = await reader.readuntil(b"\x1c\r")
        if b"MSA|AA|" not in ack:
            rejected += 1
    writer.close()
    return rejected


def _sender(port: int, n: int, connections: int, cpu: int | None, sample: str, results) -> None:
    """Child process: send n messages over `connections` sockets (one blocking socket, or asyncio for many)."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    per_conn = [build_messages(n // connections, f"B{connections}-{c}-", sample) for c in range(connections)]
    _connection(port, build_messages(100, f"W{connections}-", sample), None)  # warm-up, not timed
    latencies: list[float] = []

    async def many() -> int:
        return sum(await asyncio.gather(*(_async_connection(port, m) for m in per_conn)))

    started = time.perf_counter()
    rejected = _connection(port, per_conn[0], latencies) if connections == 1 else asyncio.run(many())
    elapsed = time.perf_counter() - started
    results.put({"elapsed": elapsed, "sent": sum(len(m) for m in per_conn), "rejected": rejected,
                 "latencies": latencies})


async def _measure_mllp(n: int, connections: int, sample: str) -> dict:
    from connectors.hl7.inventory import DeviceDirectory
    from connectors.mllp import MllpConnector
    from hub.rules.connectors import MllpListener
    from hub.rules.models import RuleSet

    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    listener_cpu, sender_cpu = (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)
    if listener_cpu is not None:
        os.sched_setaffinity(0, {listener_cpu})
    count = 0

    async def emit(event) -> None:
        nonlocal count
        count += 1

    listener = MllpConnector(MllpListener(port=0), DeviceDirectory(RuleSet()))
    await listener.start(emit)
    cpu_started = time.process_time()
    results = mp.get_context("spawn").Queue()
    sender = mp.get_context("spawn").Process(
        target=_sender, args=(listener.port, n, connections, sender_cpu, sample, results)
    )
    sender.start()
    loop = asyncio.get_running_loop()
    outcome = await loop.run_in_executor(None, results.get)
    outcome["listener_cpu_s"] = time.process_time() - cpu_started  # includes the 100 warm-up messages
    await loop.run_in_executor(None, sender.join)
    await listener.stop()
    if cpus:
        os.sched_setaffinity(0, set(cpus))
    outcome["events"] = count
    if outcome["rejected"]:
        raise RuntimeError(f"{outcome['rejected']} benchmark messages were not acknowledged AA")
    return outcome


def run(args: argparse.Namespace) -> list[Figure]:
    one = asyncio.run(_measure_mllp(args.messages, 1, args.sample))
    eight = asyncio.run(_measure_mllp(args.messages, 8, args.sample))
    figures = [
        Figure("mllp_ingest_msgs_per_s_1_conn", one["sent"] / one["elapsed"], "msgs/s"),
        Figure("mllp_ingest_msgs_per_s_8_conn", eight["sent"] / eight["elapsed"], "msgs/s"),
        Figure("mllp_ack_latency_p99_s", percentile(one["latencies"], 99), "s"),
        Figure("mllp_ack_latency_p50_s", percentile(one["latencies"], 50), "s"),
        Figure("mllp_ingest_events_per_s_8_conn", eight["sent"] * EVENTS_PER_MESSAGE / eight["elapsed"], "events/s"),
        # messages per second of listener CPU: what one core sustains, independent of other load on the machine
        Figure("mllp_listener_msgs_per_cpu_s", (eight["sent"] + 100) / eight["listener_cpu_s"], "msgs/s"),
    ]
    try:
        from connectors.mqtt_bench import measure_mqtt_ingest
    except ImportError:
        print("mqtt_ingest_msgs_per_s: connectors.mqtt_bench is not available; figure left out")
    else:
        try:
            figures.append(Figure("mqtt_ingest_msgs_per_s", measure_mqtt_ingest(args.mqtt_messages), "msgs/s"))
        except Exception as exc:  # noqa: BLE001 - keep the MLLP figures when the MQTT run fails
            print(f"mqtt_ingest_msgs_per_s: measurement failed ({type(exc).__name__}: {exc}); figure left out")
    return figures
