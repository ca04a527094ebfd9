"""A streaming ECG device: real multi-lead ECG over TCP, paced by its own sample clock.

    sim = EcgStreamSimulator(SimulatorConfig(device_id="ECG-01", source=load_source(PTB, sample_rate_hz=500,
                             leads=STANDARD_12), jitter_s=0.05, lose_packets={40}, clock_offset_s=-2.5))
    await sim.start()            # listens on 127.0.0.1:sim.port; one connection = one live stream
    ...
    await sim.stop()

The device stamps every packet with the sample index and its own clock (device time = true
time - clock_offset_s, so `true = device + offset` as in hub.events). Faults for tests and
benchmarks: `jitter_s` (each packet leaves up to this late; TCP keeps order, so later packets
queue behind it), `lose_packets` (packet seqs never sent: a gap), `resend_packets` (packet seq
-> a seq sent again right after it: an overlap), `pause_at_s`/`pause_s` (a flat line: asystole),
`alarm_at_s` (a device alarm frame). `sent_true_time[seq]` is when each packet's last sample was
acquired (true clock), which the latency measurement uses.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from connectors.ecg_stream.protocol import DeviceAlarm, Hello, SamplePacket, encode_alarm, encode_hello, encode_samples
from connectors.ecg_stream.source import EcgSource


@dataclass
class SimulatorConfig:
    device_id: str
    source: EcgSource
    packet_s: float = 0.04
    jitter_s: float = 0.0
    lose_packets: set[int] = field(default_factory=set)
    resend_packets: dict[int, int] = field(default_factory=dict)
    clock_offset_s: float = 0.0
    pause_at_s: float | None = None
    pause_s: float = 0.0
    alarm_at_s: float | None = None
    alarm_condition: str = "MDC_EVT_ECG_V_FIB"
    seed: int = 1
    model: str = "ECG-STREAM-SIM"
    manufacturer: str = "DeviceSync"


class EcgStreamSimulator:
    def __init__(self, config: SimulatorConfig, *, host: str = "127.0.0.1", port: int = 0,
                 clock: Callable[[], float] = time.time):
        self.config = config
        self.host = host
        self.port = port
        self.clock = clock
        self.sent_packets = 0
        self.start_true_time: float | None = None
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task] = set()
        self.baseline = np.median(config.source.counts, axis=0).astype(np.int16)

    @property
    def packet_samples(self) -> int:
        return max(1, round(self.config.packet_s * self.config.source.sample_rate_hz))

    def true_time_of(self, index: int) -> float:
        """True (wall) time at which sample `index` was acquired."""
        assert self.start_true_time is not None
        return self.start_true_time + index / self.config.source.sample_rate_hz

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        try:
            await self._stream(writer)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    def _hello(self) -> Hello:
        src = self.config.source
        return Hello(device_id=self.config.device_id, sample_rate_hz=src.sample_rate_hz, leads=src.leads,
                     factor=src.factor_uv, baseline=0, unit="uV", serial=f"SN-{self.config.device_id}",
                     model=self.config.model, manufacturer=self.config.manufacturer)

    def block(self, first: int, n: int) -> np.ndarray:
        """Samples [first, first+n): the source, flattened where the configured pause is."""
        cfg, fs = self.config, self.config.source.sample_rate_hz
        data = self.config.source.take(first, n).copy()
        if cfg.pause_at_s is not None and cfg.pause_s > 0:
            lo, hi = round(cfg.pause_at_s * fs), round((cfg.pause_at_s + cfg.pause_s) * fs)
            a, b = max(first, lo), min(first + n, hi)
            if a < b:  # flat at each lead's baseline (its median), so the pause has no step artefact
                data[a - first:b - first] = self.baseline
        return data

    async def _stream(self, writer: asyncio.StreamWriter) -> None:
        cfg = self.config
        fs, per = cfg.source.sample_rate_hz, self.packet_samples
        rng = random.Random(cfg.seed)
        self.start_true_time = start = self.clock()
        writer.write(encode_hello(self._hello()))
        packets: dict[int, bytes] = {}
        send_at = start
        alarm_sent = cfg.alarm_at_s is None
        seq = 0
        while True:
            first = seq * per
            acquired = start + (first + per) / fs  # true time of the packet's last sample
            send_at = max(send_at, acquired + rng.uniform(0.0, cfg.jitter_s))
            delay = send_at - self.clock()
            if delay > 0:
                await asyncio.sleep(delay)
            device_time = start + first / fs - cfg.clock_offset_s
            frame = encode_samples(SamplePacket(seq, first, device_time, self.block(first, per)))
            packets[seq] = frame
            packets.pop(seq - 500, None)
            if seq not in cfg.lose_packets:
                writer.write(frame)
            if seq in cfg.resend_packets and cfg.resend_packets[seq] in packets:
                writer.write(packets[cfg.resend_packets[seq]])
            if not alarm_sent and (first + per) / fs >= cfg.alarm_at_s:
                alarm_sent = True
                writer.write(encode_alarm(DeviceAlarm(
                    alarm_id=f"{cfg.device_id}-alarm-{seq}", condition=cfg.alarm_condition, text="device alarm",
                    priority="high", state="active", device_time=start + cfg.alarm_at_s - cfg.clock_offset_s)))
            await writer.drain()
            self.sent_packets += 1
            seq += 1
