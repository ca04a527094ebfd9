"""Helpers for the edge fault scenarios (partition, disk full): a proxy that also delays and stalls,
a timed MQTT sink, the hub's dedupe applied at the far end, a tmpfs mount and a disk filler.

The plain cuttable proxy, the Mosquitto launcher, the sinks and the order check live in
tests/integration/edge/edge_support.py and are reused from there.
"""

from __future__ import annotations

import asyncio
import errno
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson

EDGE_TESTS = Path(__file__).resolve().parents[1] / "integration" / "edge"
if str(EDGE_TESTS) not in sys.path:  # edge_support is shared with the edge integration tests
    sys.path.insert(0, str(EDGE_TESTS))

from edge_support import MqttSink, TcpProxy, start_mosquitto

from edge_buffer.traffic import StreamSpec, SyntheticTraffic
from hub.events import DataClass, Device, make_event_id
from hub.ordering.dedupe import DedupeWindow, dedupe_event
from hub.rules.load import load_rules

RULES_DIR = Path(__file__).resolve().parents[2] / "rules"


# ---------------- the upstream: a private Mosquitto, reached through a faulty proxy ----------------

@contextmanager
def running_mosquitto() -> Iterator[int]:
    """A private Mosquitto on 127.0.0.1 (edge_support.start_mosquitto), stopped on the way out."""
    proc, port = start_mosquitto()
    try:
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class FaultyTcpProxy(TcpProxy):
    """The edge tests' cuttable proxy, plus two faults of a real WAN link.

    delay(lo, hi): every chunk is held lo..hi seconds (a delay line: order kept, throughput not capped).
    stall():       half-open partition: connections stay up, new ones are accepted, but no byte gets
                   through in either direction (nothing is closed, nothing answers).
    cut():         hard partition (inherited): the listener closes and every connection is aborted.
    heal():        no delay, no stall (after a cut, restore() listens again).
    """

    def __init__(self, target_host: str, target_port: int, *, seed: int = 10):
        super().__init__(target_host, target_port)
        self.latency: tuple[float, float] | None = None
        self.rng = random.Random(seed)
        self._flowing = asyncio.Event()
        self._flowing.set()

    def delay(self, low_s: float, high_s: float) -> None:
        self.latency = (low_s, high_s)

    def stall(self) -> None:
        self._flowing.clear()

    def heal(self) -> None:
        self.latency = None
        self._flowing.set()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if not self._flowing.is_set():  # half-open: the connection is taken, nothing answers it
            self._writers.add(client_w)
            await self._flowing.wait()
            if client_w.transport.is_closing():  # aborted by a hard cut meanwhile
                return
        await super()._accept(client_r, client_w)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line: asyncio.Queue = asyncio.Queue()  # (due time, bytes); None ends it
        deliver = asyncio.create_task(self._deliver(line, writer))
        loop = asyncio.get_running_loop()
        try:
            while data := await reader.read(65536):
                hold = self.rng.uniform(*self.latency) if self.latency else 0.0
                line.put_nowait((loop.time() + hold, data))
        except (ConnectionError, OSError):
            pass
        finally:
            line.put_nowait(None)
            if writer.transport.is_closing():  # cut: what is still on the line is lost with the link
                deliver.cancel()
            await asyncio.gather(deliver, return_exceptions=True)
            self._writers.discard(writer)
            writer.transport.abort()

    async def _deliver(self, line: asyncio.Queue, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        try:
            while (item := await line.get()) is not None:
                due, data = item
                await asyncio.sleep(max(0.0, due - loop.time()))
                await self._flowing.wait()
                if writer.transport.is_closing():
                    return
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass


class TimedMqttSink(MqttSink):
    """The edge tests' MQTT sink, also noting when each payload arrived (time.time())."""

    def __init__(self, port: int, topic: str):
        self.arrived: list[float] = []
        super().__init__(port, topic)

    def _on_message(self, client, userdata, msg) -> None:
        with self._lock:
            self.payloads.append(msg.payload)
            self.arrived.append(time.time())

    def timed(self) -> list[tuple[float, bytes]]:
        with self._lock:
            return list(zip(self.arrived, self.payloads, strict=True))


# ---------------- device traffic ----------------

def bedside_streams(devices: int, vital_rate: float) -> list[StreamSpec]:
    """Per monitor: vitals, waveform chunks, trends and an alarm-only stream (the buffer's alarm lane)."""
    specs = []
    for n in range(devices):
        device = Device(id=f"MON-{n:02d}", type="multi-parameter-monitor")
        bed = f"ICU1-BED{n:02d}"
        specs += [StreamSpec(device, DataClass.VITAL, vital_rate, bed), StreamSpec(device, DataClass.WAVEFORM, 1.0, bed),
                  StreamSpec(device, DataClass.TREND, 0.5, bed), StreamSpec(device, DataClass.ALARM, 0.5, bed)]
    return specs


def refused_events(traffic: SyntheticTraffic) -> dict[str, str]:
    """event id -> stream of every event the devices were told was not taken: issued minus acknowledged
    (call after traffic.stop(), when nothing is in flight)."""
    acked = {a[0] for a in traffic.acked}
    issued = {make_event_id(s.stream, seq, traffic.run_id): s.stream
              for s in traffic.streams for seq in range(traffic._seq[s.stream])}
    return {event_id: stream for event_id, stream in issued.items() if event_id not in acked}


# ---------------- the far end: what the hub's stage 1 keeps ----------------

@dataclass
class FarEnd:
    events: list[dict]  # first copies in arrival order (what the hub's dedupe passes on)
    transport_copies: int  # extra copies the at-least-once link carried, dropped by the dedupe window
    duplicated: int  # copies the dedupe window let through a second time (would reach the EHR twice)


def through_hub_dedupe(payloads: list[bytes]) -> FarEnd:
    """Apply the hub's stage-1 dedupe (hub.ordering.dedupe, per stream, window from the shipped rules'
    sync profiles) to the payloads in arrival order; count what it drops and what still gets through twice."""
    rules = load_rules(RULES_DIR)
    windows: dict[str, DedupeWindow] = {}
    passed: set[str] = set()
    events, copies, duplicated = [], 0, 0
    for raw in payloads:
        data = orjson.loads(raw)
        window = windows.get(data["stream"])
        if window is None:
            window = windows[data["stream"]] = DedupeWindow(rules.profile(DataClass(data["data_class"])).dedupe_window_events)
        if not dedupe_event(window, data["event_id"]):
            copies += 1
        elif data["event_id"] in passed:
            duplicated += 1
        else:
            passed.add(data["event_id"])
            events.append(data)
    return FarEnd(events, copies, duplicated)


# ---------------- a real full filesystem ----------------

@contextmanager
def mounted_tmpfs(folder: Path, size_bytes: int) -> Iterator[Path]:
    """Mount a tmpfs of `size_bytes` on `folder` (root only); always unmounted on the way out."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes},mode=0700", "tmpfs", str(folder)], check=True,
                   capture_output=True)
    try:
        yield folder
    finally:
        unmount(folder)


def unmount(folder: Path) -> None:
    for _ in range(20):
        if subprocess.run(["umount", str(folder)], check=False, capture_output=True).returncode == 0:
            return
        time.sleep(0.25)  # a file still open (the buffer closing): try again, then detach it lazily
    subprocess.run(["umount", "-l", str(folder)], check=True, capture_output=True)


def fill_disk(path: Path, chunk: int = 1 << 20) -> int:
    """Write `path` until the filesystem answers ENOSPC even for small writes; returns the bytes written."""
    written = 0
    with path.open("wb", buffering=0) as f:
        while chunk:
            try:
                written += f.write(b"\0" * chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                chunk //= 4  # the last pages: smaller writes until not even one fits
    return written


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


async def wait_until(predicate, timeout: float) -> bool:
    """Poll predicate() every 0.1 s for up to `timeout` seconds; its last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.1)
    return predicate()


async def sample_every(seconds: float, sample, stop: asyncio.Event) -> None:
    """Call sample() every `seconds` until stop is set (a background probe of the scenario)."""
    while not stop.is_set():
        sample()
        try:
            await asyncio.wait_for(stop.wait(), seconds)
        except TimeoutError:
            pass
