"""Network partition between an edge gateway and its upstream (MQTT), through a proxy that delays and cuts.

Timeline, with 8 monitors emitting vitals, waveform chunks, trends and alarms the whole time:
  live 4 s > delayed link (200-500 ms per chunk) 8 s > half-open partition 10 s (connections stay up,
  no byte passes, nothing closes) > hard partition 10 s (listener closed, connections aborted)
  > delayed link again 8 s > healed.
Proves: the gateway notices a half-open link by itself (PUBACK / CONNACK timeouts), buffers through the
partition, and afterwards every event it acknowledged reaches the broker topic once per event id after the
hub's own dedupe, in order per stream, the partition's events marked replayed.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest
from edge_faults_support import (
    FaultyTcpProxy,
    TimedMqttSink,
    bedside_streams,
    running_mosquitto,
    sample_every,
    through_hub_dedupe,
    wait_until,
)
from edge_support import check_order, free_port, parse_events, replayed
from fault_report import FaultCounts, report

from edge_buffer.gateway import Gateway
from edge_buffer.traffic import SyntheticTraffic
from edge_buffer.upstream_mqtt import MqttUpstream
from hub.rules.edge import EdgeRules
from hub.rules.models import RuleSet

pytestmark = [pytest.mark.integration, pytest.mark.faults]

LIVE_S, DELAYED_S, HALF_OPEN_S, HARD_S = 4.0, 8.0, 10.0, 10.0
DELAY = (0.2, 0.5)  # seconds added to every chunk, each direction
LIVE_DEPTH = 200  # buffer depth that counts as "caught up" (about 3 s of this traffic)


@dataclass
class Timeline:
    marks: dict[str, float] = field(default_factory=dict)
    samples: list[tuple[float, int, bool, int]] = field(default_factory=list)  # (t, rows, connected, at the sink)

    def mark(self, name: str) -> None:
        self.marks[name] = time.time()

    def between(self, start: str, end: str) -> list[tuple[float, int, bool, int]]:
        return [s for s in self.samples if self.marks[start] <= s[0] < self.marks[end]]


@pytest.mark.timeout(150)
def test_partition_with_delay_half_open_and_hard_cut_loses_nothing(tmp_path):
    with running_mosquitto() as broker_port:
        asyncio.run(_partition(tmp_path, broker_port))


async def _partition(tmp_path: Path, broker_port: int) -> None:
    settings = EdgeRules(gateway_id=f"partition-{free_port()}", health_port=0, ack_timeout_s=4.0,
                         backoff_initial_s=0.5, backoff_max_s=2.0)
    proxy = FaultyTcpProxy("127.0.0.1", broker_port)
    await proxy.start()
    sink = TimedMqttSink(broker_port, settings.mqtt_topic)  # the hub side, straight on the broker
    traffic = SyntheticTraffic(bedside_streams(devices=8, vital_rate=4.0), tick_s=0.1, run_id="partition")
    gateway = Gateway(RuleSet(edge=settings), tmp_path / "buffer.db",
                      MqttUpstream("127.0.0.1", proxy.port, settings), [traffic])
    timeline = Timeline()
    stop_sampling = asyncio.Event()
    sampler = None
    await gateway.start()
    try:
        sampler = asyncio.create_task(sample_every(0.2, lambda: timeline.samples.append(
            (time.time(), gateway.queue.rows, gateway.forwarder.connected, len(sink.payloads))),
            stop_sampling))
        assert await wait_until(lambda: len(sink.payloads) >= 100, 30), "live traffic did not flow"
        timeline.mark("live")
        await asyncio.sleep(LIVE_S)
        await _run_faults(proxy, timeline)
        assert await wait_until(lambda: gateway.queue.rows <= LIVE_DEPTH, 40), "backlog not caught up after the heal"
        timeline.mark("caught_up")
        await asyncio.sleep(2.0)  # live traffic on the healed link
        await traffic.stop()
        assert await wait_until(lambda: gateway.queue.rows == 0 and gateway.queue.leased == 0, 30), "not drained"
        acked = {a[0] for a in traffic.acked}
        assert await wait_until(lambda: len({e["event_id"] for e in through_hub_dedupe(sink.snapshot()).events}
                                            & acked) == len(acked), 20)
        timeline.mark("end")
    finally:
        stop_sampling.set()
        if sampler is not None:
            await sampler
        await gateway.stop()
        await proxy.stop()
        sink.close()
    _check_and_report(traffic, sink, timeline, gateway)


async def _run_faults(proxy: FaultyTcpProxy, timeline: Timeline) -> None:
    """The fault schedule: delay, half-open, hard cut, delay, heal (marks each step on the timeline)."""
    proxy.delay(*DELAY)
    timeline.mark("delayed")
    await asyncio.sleep(DELAYED_S)
    proxy.stall()
    timeline.mark("half_open")
    await asyncio.sleep(HALF_OPEN_S)
    await proxy.cut()
    timeline.mark("hard")
    await asyncio.sleep(HARD_S)
    await proxy.restore()  # still delayed
    timeline.mark("restored")
    proxy.heal()
    proxy.delay(*DELAY)
    await asyncio.sleep(DELAYED_S)
    proxy.heal()
    timeline.mark("healed")


def _check_and_report(traffic: SyntheticTraffic, sink: TimedMqttSink, timeline: Timeline, gateway: Gateway) -> None:
    m = timeline.marks
    # the half-open link passed nothing, and the gateway found out by itself (no connection was closed)
    half_open = timeline.between("half_open", "hard")
    stalled = [s for s in half_open if s[0] >= m["half_open"] + 1.0]
    assert stalled and stalled[-1][3] == stalled[0][3], "bytes crossed the half-open link"
    assert not half_open[-1][2], "the gateway still believed in the half-open link after 10 s"
    assert not any(s[2] for s in timeline.between("hard", "restored")), "connected through a hard cut"
    assert traffic.refused == 0, "the buffer refused events during a partition it has room for"

    far = through_hub_dedupe(sink.snapshot())
    acked = {a[0]: a for a in traffic.acked}
    delivered = {e["event_id"] for e in far.events}
    assert delivered == set(acked), f"missing {len(set(acked) - delivered)}, unexpected {len(delivered - set(acked))}"
    check_order(far.events)
    parsed = parse_events(far.events)
    cut = [e for e in parsed if m["half_open"] + 1.0 <= e.received_time < m["restored"]]
    assert cut and all(replayed(e) for e in cut), "events buffered in the partition must arrive marked replayed"
    for e in parsed:  # original times and seq travel unchanged
        _, stream, seq, device_time = acked[e.event_id]
        assert (e.stream, e.seq, e.device_time) == (stream, seq, device_time)

    latency = _first_arrival_latency(sink, acked)
    delayed = [latency[i] for i, a in acked.items() if m["delayed"] + 1.0 <= a[3] < m["half_open"] and i in latency]
    live = [latency[i] for i, a in acked.items() if m["live"] <= a[3] < m["delayed"] and i in latency]
    assert delayed and min(delayed) >= DELAY[0], "the delayed link was not delayed"
    peak = max(s[1] for s in timeline.samples)
    caught_up = next(s[0] for s in timeline.samples if s[0] >= m["restored"] and s[1] <= LIVE_DEPTH)
    report(FaultCounts(
        "edge-partition-delay-halfopen-cut", sent=len(acked), delivered=len(delivered & set(acked)),
        duplicated=far.duplicated,
        figures={"partition_s": round(m["restored"] - m["half_open"], 1), "half_open_s": HALF_OPEN_S,
                 "hard_cut_s": HARD_S, "delay_ms": f"{DELAY[0] * 1000:.0f}-{DELAY[1] * 1000:.0f}",
                 "backlog_peak": peak, "catch_up_s": round(caught_up - m["restored"], 1),
                 "live_p50_ms": round(statistics.median(live) * 1000), "delayed_p50_ms": round(statistics.median(delayed) * 1000),
                 "replayed": sum(1 for e in parsed if e.provenance.replayed), "transport_copies": far.transport_copies,
                 "refused": traffic.refused,
                 "upstream_failures": int(gateway.metrics.value("devsync_edge_upstream_failures_total",
                                                                {"upstream": "mqtt"}))}))


def _first_arrival_latency(sink: TimedMqttSink, acked: dict) -> dict[str, float]:
    """event id -> seconds from the device's emit (device_time) to the first copy at the broker."""
    out: dict[str, float] = {}
    for at, raw in sink.timed():
        event_id = orjson.loads(raw)["event_id"]
        if event_id in acked and event_id not in out:
            out[event_id] = at - acked[event_id][3]
    return out
