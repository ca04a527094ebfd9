"""Disk full under the edge buffer: a real filesystem (a small tmpfs) runs out of space while the upstream
is cut and the buffer has to grow.

Timeline, with 6 monitors emitting vitals, waveform chunks, trends and alarms the whole time:
  live > upstream cut (hard, TCP proxy) 3 s > the rest of the filesystem filled with a filler file, 8 s
  of emitting into a full disk > filler deleted, 3 s of buffering > upstream healed > drained.
Proves (docs/edge-gateway.md, "Capacity"): on a full disk every emit of the failed commit raises
QueueFullError("... append failed ...") and nothing is acknowledged that is not on disk; the gateway says it
is refusing (/healthz down, refused counter) and keeps running; PRAGMA integrity_check stays ok; once space
is back it takes events again, and every event it acknowledged is delivered exactly once (after the hub's
dedupe), in order per stream, alarm-only streams first. Refused events are counted, never delivered.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest
from edge_faults_support import (
    TimedMqttSink,
    bedside_streams,
    fill_disk,
    free_bytes,
    mounted_tmpfs,
    refused_events,
    running_mosquitto,
    through_hub_dedupe,
    wait_until,
)
from edge_support import TcpProxy, check_order, free_port
from fault_report import FaultCounts, report

from edge_buffer.errors import QueueFullError
from edge_buffer.gateway import Gateway
from edge_buffer.traffic import SyntheticTraffic
from edge_buffer.upstream_mqtt import MqttUpstream
from hub.rules.edge import EdgeRules
from hub.rules.models import RuleSet

pytestmark = [pytest.mark.integration, pytest.mark.faults]

FS_BYTES = 24 * 1024 * 1024
CUT_BEFORE_FULL_S, FULL_S, FREED_S = 3.0, 8.0, 3.0


class RefusalLog:
    """Wraps the gateway's emit to keep every QueueFullError message a device got (the clear error)."""

    def __init__(self, emit):
        self.emit_to_gateway = emit
        self.errors: list[str] = []

    async def emit(self, event) -> None:
        try:
            await self.emit_to_gateway(event)
        except QueueFullError as exc:
            self.errors.append(str(exc))
            raise


def integrity(path: Path) -> str:
    """PRAGMA integrity_check through a separate read-only connection (the gateway may be running)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return "; ".join(row[0] for row in db.execute("PRAGMA integrity_check"))
    finally:
        db.close()


@pytest.mark.timeout(150)
def test_disk_full_refuses_cleanly_and_delivers_every_acknowledged_event_once(tmp_path):
    with running_mosquitto() as broker_port, mounted_tmpfs(tmp_path / "edge-disk", FS_BYTES) as disk:
        asyncio.run(_disk_full(disk, broker_port))


async def _disk_full(disk: Path, broker_port: int) -> None:
    settings = EdgeRules(gateway_id=f"diskfull-{free_port()}", health_port=0, ack_timeout_s=4.0,
                         backoff_initial_s=0.3, backoff_max_s=1.0, compact_interval_s=2.0)
    proxy = TcpProxy("127.0.0.1", broker_port)
    await proxy.start()
    sink = TimedMqttSink(broker_port, settings.mqtt_topic)
    traffic = SyntheticTraffic(bedside_streams(devices=6, vital_rate=5.0), tick_s=0.1, run_id="diskfull")
    buffer = disk / "buffer.db"
    filler = disk / "filler.bin"
    gateway = Gateway(RuleSet(edge=settings), buffer, MqttUpstream("127.0.0.1", proxy.port, settings), [])
    figures: dict = {}
    try:
        await gateway.start()
        refusals = RefusalLog(gateway.emit)
        await traffic.start(refusals.emit)
        assert await wait_until(lambda: len(sink.payloads) >= 100, 30), "live traffic did not flow"

        await proxy.cut()
        await asyncio.sleep(CUT_BEFORE_FULL_S)
        assert gateway.queue.rows > 0, "the buffer did not grow with the upstream cut"
        figures["filler_mb"] = round(await asyncio.to_thread(fill_disk, filler) / 2**20, 1)
        full_at, acked_at_full, refused_at_full = time.time(), len(traffic.acked), traffic.refused
        health_full = await _while_full(gateway, traffic, buffer, refusals)
        figures.update(acked_while_full=len(traffic.acked) - acked_at_full,
                       refused_while_full=traffic.refused - refused_at_full, full_s=round(time.time() - full_at, 1),
                       health_while_full=health_full, buffer_file_kb=gateway.queue.file_bytes() // 1024)

        filler.unlink()  # space is back: the gateway takes events again, still buffering (upstream cut)
        acked_at_free, compactions = len(traffic.acked), gateway.metrics.value("devsync_edge_compactions_total")
        await asyncio.sleep(FREED_S)
        assert len(traffic.acked) > acked_at_free + 50, "no events taken after the disk was freed"
        assert gateway.metrics.value("devsync_edge_compactions_total") > compactions, "housekeeping did not resume"
        assert gateway.health()["status"] == "degraded", "still refusing after the disk was freed"
        assert integrity(buffer) == "ok"

        await proxy.restore()
        healed = time.monotonic()
        assert await wait_until(lambda: gateway.forwarder.connected and gateway.queue.rows < 100, 40)
        figures["catch_up_s"] = round(time.monotonic() - healed, 1)
        await traffic.stop()
        assert await wait_until(lambda: gateway.queue.rows == 0 and gateway.queue.leased == 0, 30), "not drained"
        acked = {a[0] for a in traffic.acked}
        assert await wait_until(lambda: acked <= {e["event_id"] for e in through_hub_dedupe(sink.snapshot()).events}, 20)
        assert gateway._crashed is None, f"a gateway task died on the full disk: {gateway._crashed}"
    finally:
        await traffic.stop()
        await gateway.stop()
        await proxy.stop()
        sink.close()
    figures["integrity"] = integrity(buffer)
    _check_and_report(traffic, sink, figures)


async def _while_full(gateway: Gateway, traffic: SyntheticTraffic, buffer: Path, refusals: RefusalLog) -> str:
    """Emit into the full disk for FULL_S; check the refusal is clear and visible. Returns /healthz's status."""
    assert free_bytes(buffer.parent) < 64 * 1024, "the filesystem is not full"
    refused_before = traffic.refused
    await asyncio.sleep(FULL_S)
    assert traffic.refused > refused_before, "nothing was refused on a full disk"
    assert refusals.errors and all("append failed" in e and "full" in e for e in refusals.errors), refusals.errors[:3]
    health = gateway.health()
    assert health["status"] == "down" and health["buffer"]["refusing"], health  # /healthz 503: refusing new events
    assert gateway.metrics.value("devsync_edge_refused_total", {"reason": "disk-full"}) >= traffic.refused - refused_before
    assert gateway._crashed is None, f"a gateway task died on the full disk: {gateway._crashed}"
    assert integrity(buffer) == "ok"
    return health["status"]


def _check_and_report(traffic: SyntheticTraffic, sink: TimedMqttSink, figures: dict) -> None:
    assert figures["integrity"] == "ok"
    far = through_hub_dedupe(sink.snapshot())
    acked = {a[0] for a in traffic.acked}
    refused = refused_events(traffic)
    delivered = {e["event_id"] for e in far.events}
    assert len(refused) == traffic.refused
    assert not refused.keys() & delivered, f"{len(refused.keys() & delivered)} refused events were stored and delivered anyway"
    assert delivered == acked, f"missing {len(acked - delivered)}, unexpected {len(delivered - acked)}"
    check_order(far.events)
    backlog = [(i, e) for i, e in enumerate(far.events) if e["provenance"]["replayed"]]
    alarms = [i for i, e in backlog if e["data_class"] == "alarm"]
    others = [i for i, e in backlog if e["data_class"] != "alarm"]
    assert alarms and others and max(alarms) < min(others), "the alarm lane did not go first after the outage"
    report(FaultCounts(
        "edge-disk-full-tmpfs", sent=len(acked), delivered=len(delivered & acked), duplicated=far.duplicated,
        figures={"fs_mb": FS_BYTES // 2**20, **figures, "refused": traffic.refused,
                 "refused_alarms": sum(1 for stream in refused.values() if stream.endswith("/alarm")),
                 "backlog_alarms": len(alarms),
                 "backlog_replayed": len(backlog), "transport_copies": far.transport_copies}))
