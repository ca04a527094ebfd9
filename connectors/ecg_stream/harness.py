"""Run simulated streaming ECG devices through the hub and measure what reaches the sink.

    result = await run_stream_scenario(Scenario(devices=10, seconds=60, jitter_s=0.05, lose={3: {40}}))
    result.latencies_s          # per waveform chunk: sink arrival - true time of its last sample
    result.arrivals             # every event the sink got, in order

Wiring: EcgStreamSimulator (TCP, real time) -> EcgStreamConnector -> EmbeddedRuntime (stage 1 and
stage 2 of the hub) -> RecordingSink. Used by the integration tests and `measure_stream_latency`
(the `devsync bench ecg` figure ecg_stream_latency_p99_s).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from connectors.ecg_stream.connector import EcgStreamConnector
from connectors.ecg_stream.simulator import EcgStreamSimulator, SimulatorConfig
from connectors.ecg_stream.source import STANDARD_12, EcgSource, load_source
from hub.events import Event, EventKind
from hub.rules.association import StaticBinding
from hub.rules.devices import DeviceEntry
from hub.rules.ecg import EcgRules
from hub.rules.models import RuleSet

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
PTB = DATA / "wfdb" / "s0010_re.hea"


@dataclass
class RecordingSink:
    """Records every observation with its arrival time (the sink end of the latency measurement)."""

    name: str = "recorder"
    clock: object = time.time
    arrivals: list[tuple[float, Event]] = field(default_factory=list)

    def add(self, event: Event) -> None:
        self.arrivals.append((self.clock(), event))

    async def flush(self) -> None:
        return None

    async def close(self) -> None:
        return None


@dataclass
class Scenario:
    devices: int = 2
    seconds: float = 10.0
    sample_rate_hz: float = 500.0
    leads: tuple[str, ...] = STANDARD_12
    jitter_s: float = 0.05
    jitter_buffer_s: float = 1.0
    chunk_s: float = 1.0
    packet_s: float = 0.04
    clock_offsets_s: tuple[float, ...] = (0.0,)
    lose: dict[int, set[int]] = field(default_factory=dict)  # device number -> packet seqs never sent
    resend: dict[int, dict[int, int]] = field(default_factory=dict)  # device number -> {after seq: seq sent again}
    pause: dict[int, tuple[float, float]] = field(default_factory=dict)  # device number -> (at s, seconds)
    device_alarm_at: dict[int, float] = field(default_factory=dict)
    ecg: dict = field(default_factory=dict)  # extra ecg: rule overrides, e.g. {"alarms": {"partial_record_s": 10}}
    source: Path = PTB


@dataclass
class ScenarioResult:
    arrivals: list[tuple[float, Event]]
    latencies_s: list[float]  # steady state: each stream's first chunk (held by stage 1's reorder window) left out
    first_chunk_latencies_s: list[float]
    true_offsets: dict[str, float]
    health: dict

    def waveforms(self, stream: str | None = None) -> list[Event]:
        return [e for _, e in self.arrivals if e.kind is EventKind.WAVEFORM and (stream is None or e.stream == stream)]

    def statuses(self) -> list[Event]:
        return [e for _, e in self.arrivals if e.kind is EventKind.DEVICE_STATUS]

    def stats(self) -> dict:
        lat = np.asarray(self.latencies_s)
        if not len(lat):
            return {"chunks": 0}
        return {"chunks": len(lat), "p50_s": float(np.percentile(lat, 50)), "p99_s": float(np.percentile(lat, 99)),
                "max_s": float(lat.max()), "first_chunk_max_s": max(self.first_chunk_latencies_s, default=0.0)}


def device_id(n: int) -> str:
    return f"ECGS-{n:02d}"


def scenario_rules(base: RuleSet, scenario: Scenario, ports: dict[str, int]) -> RuleSet:
    """`base` plus the scenario's devices, one bed and one static patient binding each, and the ecg: section."""
    ids = sorted(ports)
    devices = [DeviceEntry(id=i, type="ecg-stream", location=f"ECG-BED{n:02d}", model="ECG-STREAM-SIM")
               for n, i in enumerate(ids)]
    bindings = [StaticBinding(location=f"ECG-BED{n:02d}", patient_id=f"PAT-ECG-{n:02d}", encounter_id=f"ENC-{n:02d}")
                for n in range(len(ids))]
    ecg = EcgRules.model_validate({**scenario.ecg, "stream": {
        **scenario.ecg.get("stream", {}), "jitter_buffer_s": scenario.jitter_buffer_s, "chunk_s": scenario.chunk_s,
        "devices": [{"id": i, "host": "127.0.0.1", "port": ports[i]} for i in ids]}})
    association = base.association.model_copy(update={
        "static_bindings": [*base.association.static_bindings, *bindings]})
    return base.model_copy(update={"devices": [*base.devices, *devices], "association": association, "ecg": ecg})


async def run_stream_scenario(scenario: Scenario, base: RuleSet, *, source: EcgSource | None = None,
                              on_tick=None) -> ScenarioResult:
    from hub.runtime.embedded import EmbeddedRuntime

    source = source or load_source(scenario.source, sample_rate_hz=scenario.sample_rate_hz, leads=scenario.leads)
    sims: dict[str, EcgStreamSimulator] = {}
    offsets: dict[str, float] = {}
    for n in range(scenario.devices):
        dev = device_id(n)
        offsets[dev] = scenario.clock_offsets_s[n % len(scenario.clock_offsets_s)]
        pause = scenario.pause.get(n)
        sims[dev] = EcgStreamSimulator(SimulatorConfig(
            device_id=dev, source=source, packet_s=scenario.packet_s, jitter_s=scenario.jitter_s,
            lose_packets=scenario.lose.get(n, set()), resend_packets=scenario.resend.get(n, {}),
            clock_offset_s=offsets[dev], pause_at_s=pause[0] if pause else None, pause_s=pause[1] if pause else 0.0,
            alarm_at_s=scenario.device_alarm_at.get(n), seed=n + 1))
    for sim in sims.values():
        await sim.start()
    rules = scenario_rules(base, scenario, {d: s.port for d, s in sims.items()})
    sink = RecordingSink()
    runtime = EmbeddedRuntime(rules, store=None, sinks=[sink], tick_s=0.02)
    loop_task = asyncio.create_task(runtime.run())
    connector = EcgStreamConnector(rules)
    await connector.start(runtime.emit)
    try:
        await asyncio.sleep(scenario.seconds)
        health = connector.health()
    finally:
        await connector.stop()
        for sim in sims.values():
            await sim.stop()
        await runtime.stop()
        await loop_task
        await runtime.finish()
    steady, first = latencies(sink.arrivals, offsets)
    return ScenarioResult(sink.arrivals, steady, first, offsets, health)


def latencies(arrivals: list[tuple[float, Event]], true_offsets: dict[str, float]) -> tuple[list[float], list[float]]:
    """Sink arrival - true acquisition time of each chunk's newest sample (device time + the true offset)."""
    steady, first = [], []
    seen: set[str] = set()
    for at, event in arrivals:
        if event.kind is not EventKind.WAVEFORM or event.alarm is not None:
            continue
        value = at - (event.device_time + true_offsets[event.device.id])
        (steady if event.stream in seen else first).append(value)
        seen.add(event.stream)
    return steady, first
