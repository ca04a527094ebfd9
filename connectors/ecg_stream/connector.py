"""The streaming ECG connector ("synchronous download"): TCP to each device, canonical events out.

    connector = EcgStreamConnector(rules)              # devices from rules.ecg.stream.devices
    await connector.start(runtime.emit)                # returns once the device tasks run
    ...
    await connector.stop()

Per device: a reader task decodes frames into a queue; a worker task feeds them to the
device's DeviceStream (jitter buffer, clock alignment, gap/overlap detection), releases due
chunks every `release_tick_s`, runs R-wave detection in a worker process and awaits `emit` for
every event in order. A malformed frame resets that device's connection (status event +
metric) and nothing else; the connection is re-opened with exponential backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from connectors.base import Emit
from connectors.ecg_stream import metrics
from connectors.ecg_stream.device import DeviceStream
from connectors.ecg_stream.protocol import (
    ALARM,
    HEADER,
    HELLO,
    SAMPLES,
    decode_alarm,
    decode_header,
    decode_hello,
    decode_samples,
)
from connectors.ecg_stream.rwave import find_peaks, warm_up_window
from hub.errors import DecodeError, RuleError
from hub.events import Device
from hub.logs import get_logger
from hub.rules.ecg import EcgStreamDevice
from hub.rules.models import RuleSet

log = get_logger("connector.ecg-stream")
_EOF = object()
POOL_START_TIMEOUT_S = 90.0


class EcgStreamConnector:
    name = "ecg-stream"

    def __init__(self, rules: RuleSet, devices: list[EcgStreamDevice] | None = None, *,
                 clock: Callable[[], float] = time.time):
        self.rules = rules
        self.devices = list(devices if devices is not None else rules.ecg.stream.devices)
        self.clock = clock
        self.streams: dict[str, DeviceStream] = {}
        self.connected: dict[str, bool] = {d.id: False for d in self.devices}
        self._tasks: list[asyncio.Task] = []
        self._stopping = asyncio.Event()
        self._pool: ProcessPoolExecutor | None = None

    @classmethod
    def from_rules(cls, rules: RuleSet, *, devices: list | None = None, overrides: dict | None = None):
        """For connectors.registry: the inventory's ecg-stream devices, each with its endpoint in
        ecg.stream.devices (a device without one is a RuleError naming it)."""
        endpoints = {d.id: d for d in rules.ecg.stream.devices}
        wanted = [d.id for d in devices] if devices is not None else list(endpoints)
        missing = [i for i in wanted if i not in endpoints]
        if missing:
            raise RuleError(f"ecg-stream devices {', '.join(missing)} have no endpoint in ecg.stream.devices "
                            "(add {id, host, port} for each)")
        return cls(rules, [endpoints[i] for i in wanted])

    async def start(self, emit: Emit) -> None:
        self._stopping.clear()
        if self.rules.ecg.rwave.enabled and self.rules.ecg.rwave.detector_processes:
            # start the detector process now (it imports wfdb: seconds), not at the first analysis
            self._pool = detector_pool(self.rules.ecg.rwave.detector_processes)
            try:
                await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(
                    self._pool, find_peaks, warm_up_window()), timeout=POOL_START_TIMEOUT_S)
            except (TimeoutError, BrokenProcessPool, OSError) as exc:
                self._pool_failed(f"detector process did not start: {type(exc).__name__}: {exc}")
        self._tasks = [asyncio.create_task(self._run_device(d, emit), name=f"ecg-stream:{d.id}") for d in self.devices]

    async def stop(self) -> None:
        self._stopping.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def health(self) -> dict:
        up = sum(self.connected.values())
        status = "up" if up == len(self.devices) else ("degraded" if up else "down")
        return {"status": status, "devices": len(self.devices), "connected": up,
                "gaps": sum(s.gaps for s in self.streams.values()),
                "overlaps": sum(s.overlaps for s in self.streams.values())}

    def _device(self, endpoint: EcgStreamDevice, hello) -> Device:
        entry = self.rules.device(endpoint.id)
        return Device(id=endpoint.id, type=entry.type if entry else "ecg-stream", serial=hello.serial,
                      eui64=getattr(entry, "eui64", None) if entry else None,
                      model=(getattr(entry, "model", None) if entry else None) or hello.model,
                      manufacturer=(getattr(entry, "manufacturer", None) if entry else None) or hello.manufacturer)

    async def _run_device(self, endpoint: EcgStreamDevice, emit: Emit) -> None:
        cfg = self.rules.ecg.stream
        wait = cfg.reconnect_initial_s
        first = True
        while not self._stopping.is_set():
            try:
                reader, writer = await asyncio.open_connection(endpoint.host, endpoint.port)
            except OSError as exc:
                log.warning("connect failed", device=endpoint.id, error=str(exc), retry_in_s=wait)
                await asyncio.sleep(wait)
                wait = min(wait * 2, cfg.reconnect_max_s)
                continue
            if not first:
                metrics.RECONNECTS.inc()
            first = False
            wait = cfg.reconnect_initial_s
            self.connected[endpoint.id] = True
            reason = "connection closed by the device"
            try:
                await self._serve(endpoint, reader, emit)
            except DecodeError as exc:
                metrics.DECODE_ERRORS.inc()
                reason = f"malformed frame: {exc}"
                log.warning("malformed frame; reconnecting", device=endpoint.id, reason=str(exc))
            finally:
                self.connected[endpoint.id] = False
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
            state = self.streams.get(endpoint.id)
            if state is not None and not self._stopping.is_set():
                for event in state.disconnected(self.clock(), reason):
                    await emit(event)

    async def _serve(self, endpoint: EcgStreamDevice, reader: asyncio.StreamReader, emit: Emit) -> None:
        frames: asyncio.Queue = asyncio.Queue()
        reading = asyncio.create_task(self._read_frames(reader, frames))
        tick = self.rules.ecg.stream.release_tick_s
        detecting: asyncio.Task | None = None
        getting: asyncio.Task | None = None
        try:
            # Not asyncio.wait_for(frames.get(), tick): on Python 3.11 it can swallow a cancellation that
            # lands as the get completes, and this loop would then never stop. One pending get, asyncio.wait
            # with a timeout, and the stop flag checked every turn.
            while not self._stopping.is_set():
                if getting is None:
                    getting = asyncio.ensure_future(frames.get())
                await asyncio.wait({getting}, timeout=tick)
                frame = None
                if getting.done():
                    frame, getting = getting.result(), None
                if frame is _EOF:
                    break
                if isinstance(frame, DecodeError):
                    raise frame
                now = self.clock()
                events = self._on_frame(endpoint, frame, now) if frame is not None else []
                state = self.streams.get(endpoint.id)
                if state is None:
                    continue
                events += state.release(now)
                if detecting is not None and detecting.done():
                    window, peaks = detecting.result()
                    events += state.on_rwave(window, peaks, self.clock())
                    detecting = None
                if detecting is None and state.rwave.due():
                    window = state.rwave.snapshot()
                    detecting = asyncio.create_task(self._detect(window))
                for event in events:
                    await emit(event)
        finally:
            pending = [t for t in (reading, detecting, getting) if t is not None]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def _on_frame(self, endpoint: EcgStreamDevice, frame: tuple[int, bytes], now: float) -> list:
        kind, payload = frame
        if kind == HELLO:
            hello = decode_hello(payload)
            if hello.device_id != endpoint.id:
                raise DecodeError(f"device at {endpoint.host}:{endpoint.port} says it is {hello.device_id!r}, "
                                  f"the rules expect {endpoint.id!r} (ecg.stream.devices)", field="hello.device_id")
            old = self.streams.get(endpoint.id)
            if old is None or old.ctx.hello != hello:
                self.streams[endpoint.id] = DeviceStream(hello, self._device(endpoint, hello), self.rules.ecg)
            return []
        state = self.streams.get(endpoint.id)
        if state is None:
            raise DecodeError("samples or alarm before HELLO", field="type")
        if kind == SAMPLES:
            packet = decode_samples(payload, max_samples=self.rules.ecg.stream.max_packet_samples)
            if packet.samples.shape[1] != len(state.ctx.hello.leads):
                raise DecodeError(f"packet {packet.seq} has {packet.samples.shape[1]} leads, HELLO announced "
                                  f"{len(state.ctx.hello.leads)}", field="samples")
            return state.on_packet(packet, now)
        if kind == ALARM:
            return state.on_device_alarm(decode_alarm(payload), now)
        return []

    async def _detect(self, window):
        """R peaks of one window, off the event loop: in the detector process, else a thread.

        A detector process that breaks or stops answering is dropped (warning) and detection
        goes on in a thread: slower for the stream, but R waves and alarms keep coming."""
        if self._pool is None:
            return window, await asyncio.to_thread(find_peaks, window)
        limit = max(30.0, 10 * self.rules.ecg.rwave.detect_every_s)
        try:
            peaks = await asyncio.wait_for(
                asyncio.get_running_loop().run_in_executor(self._pool, find_peaks, window), timeout=limit)
        except (TimeoutError, BrokenProcessPool) as exc:
            self._pool_failed(f"detector process failed: {type(exc).__name__}: {exc}")
            peaks = await asyncio.to_thread(find_peaks, window)
        return window, peaks

    def _pool_failed(self, reason: str) -> None:
        log.warning("R-wave detection falls back to a thread", reason=reason)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = None

    @staticmethod
    async def _read_frames(reader: asyncio.StreamReader, frames: asyncio.Queue) -> None:
        try:
            while True:
                header = await reader.readexactly(HEADER.size)
                kind, length = decode_header(header)
                await frames.put((kind, await reader.readexactly(length)))
        except (asyncio.IncompleteReadError, ConnectionError):
            await frames.put(_EOF)
        except DecodeError as exc:
            await frames.put(exc)




def detector_pool(workers: int) -> ProcessPoolExecutor:
    """Worker processes for XQRS, forked from a forkserver that has the detector imported already
    (the first pool pays the import, later ones start in well under a second; no fork of this
    multi-threaded process itself)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["hub.ecg.analysis", "connectors.ecg_stream.rwave"])
    return ProcessPoolExecutor(max_workers=workers, mp_context=context)
