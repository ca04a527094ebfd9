"""Helpers for the edge integration tests: a cuttable TCP proxy, MQTT and Kafka sinks, checks."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from hub.events import Event, Quality


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TcpProxy:
    """127.0.0.1:listen_port -> target. cut() refuses and drops every connection; restore() lets them in again."""

    def __init__(self, target_host: str, target_port: int, listen_port: int | None = None):
        self.target = (target_host, target_port)
        self.port = listen_port or free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.connections = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port, reuse_address=True)

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def restore(self) -> None:
        await self.start()

    async def stop(self) -> None:
        await self.cut()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.transport.abort()
            return
        self.connections += 1
        self._writers.update((client_w, up_w))
        try:
            await asyncio.gather(self._pipe(client_r, up_w), self._pipe(up_r, client_w))
        except asyncio.CancelledError:  # loop shutting down
            client_w.transport.abort()
            up_w.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()


class ThreadedTcpProxy:
    """The same proxy on its own event loop thread, for tests whose gateway runs in a subprocess."""

    def __init__(self, target_host: str, target_port: int, listen_port: int | None = None):
        self.proxy = TcpProxy(target_host, target_port, listen_port)
        self.port = self.proxy.port
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def start(self) -> None:
        self._call(self.proxy.start())

    def cut(self) -> None:
        self._call(self.proxy.cut())

    def restore(self) -> None:
        self._call(self.proxy.restore())

    def stop(self) -> None:
        self._call(self.proxy.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def start_mosquitto() -> tuple[subprocess.Popen, int]:
    port = free_port()
    folder = Path(tempfile.mkdtemp(prefix="edge-mosquitto-"))
    conf = folder / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    "max_queued_messages 0\nmax_inflight_messages 0\nset_tcp_nodelay true\n")
    proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"mosquitto did not listen on {port}")


class MqttSink:
    """Subscribes (QoS 1) and keeps every payload in arrival order."""

    def __init__(self, port: int, topic: str):
        self.payloads: list[bytes] = []
        self._lock = threading.Lock()
        ready = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"edge-sink-{free_port()}")

        def on_connect(client, _u, _f, _rc, _p):
            client.subscribe(topic, qos=1)

        self.client.on_connect = on_connect
        self.client.on_subscribe = lambda *a: ready.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, 60)
        self.client.loop_start()
        if not ready.wait(10):
            raise RuntimeError("sink did not subscribe")

    def _on_message(self, _c, _u, msg) -> None:
        with self._lock:
            self.payloads.append(msg.payload)

    def snapshot(self) -> list[bytes]:
        with self._lock:
            return list(self.payloads)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class KafkaSink:
    """Reads every partition of a topic from the beginning (assign, no group join)."""

    def __init__(self, bootstrap: str, topic: str, partitions: int):
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"edge-sink-{free_port()}",
                                  "enable.auto.commit": False, "socket.connection.setup.timeout.ms": 5000})
        self.consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        self.payloads: list[bytes] = []
        self.keys: list[bytes] = []

    def poll(self, seconds: float = 0.5) -> int:
        got = 0
        for msg in self.consumer.consume(10000, timeout=seconds):
            if msg.error() is None:
                self.payloads.append(msg.value())
                self.keys.append(msg.key())
                got += 1
        return got

    def close(self) -> None:
        self.consumer.close()


def first_occurrences(payloads: list[bytes]) -> tuple[list[dict], int]:
    """Events deduplicated by event id (what the hub's stage 1 does), and how many duplicates were dropped."""
    seen: set[str] = set()
    out: list[dict] = []
    for raw in payloads:
        data = orjson.loads(raw)
        if data["event_id"] in seen:
            continue
        seen.add(data["event_id"])
        out.append(data)
    return out, len(payloads) - len(out)


def check_order(events: list[dict]) -> dict[str, list[int]]:
    """seq per stream in arrival order; asserts it only ever increases (one stream, one order)."""
    per_stream: dict[str, list[int]] = defaultdict(list)
    for data in events:
        per_stream[data["stream"]].append(data["seq"])
    for stream, seqs in per_stream.items():
        bad = [i for i in range(1, len(seqs)) if seqs[i] <= seqs[i - 1]]
        assert not bad, f"stream {stream} out of order at {bad[:5]}: {[seqs[i - 1:i + 1] for i in bad[:3]]}"
    return per_stream


def parse_events(events: list[dict]) -> list[Event]:
    return [Event.model_validate(d) for d in events]


def replayed(event: Event) -> bool:
    return event.provenance.replayed and Quality.REPLAYED in event.quality


def make_tls_files(folder: Path) -> dict[str, Path]:
    """A throwaway CA, a server certificate for 127.0.0.1 and a client certificate (openssl CLI)."""
    folder.mkdir(parents=True, exist_ok=True)
    f = {n: folder / n for n in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem",
                                 "client.key", "client.csr", "client.pem", "ext.cnf")}
    f["ext.cnf"].write_text("subjectAltName=IP:127.0.0.1\n")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=edge-test-ca",
        "-keyout", str(f["ca.key"]), "-out", str(f["ca.pem"]))
    for name, cn in (("server", "127.0.0.1"), ("client", "edge-gateway")):
        run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", f"/CN={cn}", "-keyout", str(f[f"{name}.key"]),
            "-out", str(f[f"{name}.csr"]))
        run("x509", "-req", "-in", str(f[f"{name}.csr"]), "-CA", str(f["ca.pem"]), "-CAkey", str(f["ca.key"]),
            "-CAcreateserial", "-days", "2", "-out", str(f[f"{name}.pem"]), "-extfile", str(f["ext.cnf"]))
    return f


def start_tls_mosquitto(tls: dict[str, Path]) -> tuple[subprocess.Popen, int, int]:
    """Mosquitto with a plain listener (for the test sink) and a mutual-TLS listener (for the gateway)."""
    plain, secure = free_port(), free_port()
    conf = tls["ca.pem"].parent / "mosquitto.conf"
    conf.write_text(
        f"user root\nper_listener_settings false\nallow_anonymous true\npersistence false\nset_tcp_nodelay true\n"
        f"listener {plain} 127.0.0.1\n"
        f"listener {secure} 127.0.0.1\ncafile {tls['ca.pem']}\ncertfile {tls['server.pem']}\n"
        f"keyfile {tls['server.key']}\nrequire_certificate true\ntls_version tlsv1.2\n")
    proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", secure), timeout=0.5):
                return proc, plain, secure
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {proc.stderr.read().decode()[-500:]}")
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("TLS mosquitto did not listen")
