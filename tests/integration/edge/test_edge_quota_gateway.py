"""Quota through the whole gateway: fill to the quota while the upstream is unreachable, under shedding;
alarms are never shed; what the sink is missing equals the shed count; the alert fired; when only
alarms are left new events are refused (back-pressure, /healthz 503) instead of dropped."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from collections import Counter

import pytest
from edge_support import MqttSink, TcpProxy, first_occurrences, free_port

from edge_buffer.errors import QueueFullError
from edge_buffer.gateway import Gateway
from edge_buffer.traffic import StreamSpec, SyntheticTraffic, build_event
from edge_buffer.upstream_mqtt import MqttUpstream
from hub.events import DataClass, Device
from hub.rules.edge import EdgeRules
from hub.rules.models import RuleSet


async def wait_until(predicate, timeout: float) -> bool:
    for _ in range(int(timeout / 0.1)):
        if predicate():
            return True
        await asyncio.sleep(0.1)
    return predicate()


def http_get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_fill_to_quota_sheds_never_alarms_and_counts_match(tmp_path, edge_mosquitto):
    asyncio.run(_fill(tmp_path, edge_mosquitto))


async def _fill(tmp_path, broker_port: int) -> None:
    settings = EdgeRules(gateway_id=f"quota-{free_port()}", quota_rows=400, fill_warning_levels=[0.5, 0.9],
                         health_port=free_port(), backoff_initial_s=0.2, backoff_max_s=0.5)
    proxy = TcpProxy("127.0.0.1", broker_port)  # not started yet: the upstream is unreachable
    sink = MqttSink(broker_port, settings.mqtt_topic)
    device = Device(id="MON-01", type="multi-parameter-monitor")
    classes = (DataClass.VITAL, DataClass.WAVEFORM, DataClass.TREND, DataClass.ALARM)
    traffic = SyntheticTraffic([StreamSpec(device, c, 1.0, "ICU1-BED01") for c in classes], burst_concurrency=8,
                               max_events=1200)
    gateway = Gateway(RuleSet(edge=settings), tmp_path / "buffer.db", MqttUpstream("127.0.0.1", proxy.port, settings),
                      [traffic])
    await gateway.start()
    try:
        assert await wait_until(lambda: traffic.done, 30)
        assert traffic.refused == 0 and len(traffic.acked) == 1200
        emitted = Counter(stream.split("/")[1] for _, stream, _, _ in traffic.acked)
        assert gateway.queue.rows == 400
        m = gateway.metrics
        shed = {c.value: m.value("devsync_edge_shed_total", {"reason": "quota-rows", "data_class": c.value})
                for c in classes}
        assert shed["alarm"] == 0
        assert sum(shed.values()) == 1200 - 400
        assert m.value("devsync_edge_shedding_alert") == 1
        assert m.value("devsync_edge_fill_warning_level") == 0.9
        status, body = await asyncio.to_thread(http_get, gateway.health_port, "/metrics")
        assert status == 200 and b"devsync_edge_shedding_alert 1.0" in body

        await proxy.start()  # the link comes back: what was kept is delivered
        assert await wait_until(lambda: gateway.queue.rows == 0 and gateway.queue.leased == 0, 30)
        assert await wait_until(lambda: len(sink.snapshot()) >= 400, 10)
        events, _ = first_occurrences(sink.snapshot())
        delivered = Counter(e["data_class"] for e in events)
        assert delivered["alarm"] == emitted["alarm"] == 300  # every alarm, none shed
        for cls, count in shed.items():  # per class: missing at the sink == shed count
            assert emitted[cls] - delivered[cls] == count, cls
        assert len(events) + sum(shed.values()) == len(traffic.acked)
    finally:
        await gateway.stop()
        await proxy.stop()
        sink.close()


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_only_alarms_left_refuses_with_back_pressure(tmp_path):
    asyncio.run(_alarms_only(tmp_path))


async def _alarms_only(tmp_path) -> None:
    settings = EdgeRules(gateway_id="alarms-only", quota_rows=50, health_port=free_port(), backoff_max_s=1.0)
    unreachable = MqttUpstream("127.0.0.1", free_port(), settings)
    gateway = Gateway(RuleSet(edge=settings), tmp_path / "buffer.db", unreachable, [])
    await gateway.start()
    try:
        spec = StreamSpec(Device(id="PUMP-01", type="infusion-pump"), DataClass.ALARM, 1.0)
        for seq in range(50):
            await gateway.emit(build_event(spec, seq, 1.7e9 + seq))
        with pytest.raises(QueueFullError, match="unsheddable"):
            await gateway.emit(build_event(spec, 50, 1.7e9 + 50))
        vital = StreamSpec(Device(id="PUMP-01", type="infusion-pump"), DataClass.VITAL, 1.0)
        with pytest.raises(QueueFullError):
            await gateway.emit(build_event(vital, 0, 1.7e9))
        assert gateway.queue.rows == 50
        assert gateway.metrics.value("devsync_edge_refused_total", {"reason": "quota-rows"}) == 2
        status, body = await asyncio.to_thread(http_get, gateway.health_port, "/healthz")
        assert status == 503 and b'"refusing":true' in body
    finally:
        await gateway.stop()


@pytest.mark.integration
@pytest.mark.timeout(30)
def test_disk_full_fails_the_emit_and_acknowledges_nothing(tmp_path):
    asyncio.run(_disk_full(tmp_path))


async def _disk_full(tmp_path) -> None:
    settings = EdgeRules(gateway_id="disk-full", health_port=0, backoff_max_s=1.0)
    gateway = Gateway(RuleSet(edge=settings), tmp_path / "buffer.db",
                      MqttUpstream("127.0.0.1", free_port(), settings), [])
    await gateway.start()
    try:
        spec = StreamSpec(Device(id="MON-01", type="multi-parameter-monitor"), DataClass.WAVEFORM, 1.0)
        await gateway.emit(build_event(spec, 0, 1.7e9))
        db = gateway.queue._db
        pages = await gateway.store(lambda: db.execute("PRAGMA page_count").fetchone()[0])
        await gateway.store(db.execute, f"PRAGMA max_page_count = {pages}")
        results = await asyncio.gather(*(gateway.emit(build_event(spec, s, 1.7e9 + s)) for s in range(1, 200)),
                                       return_exceptions=True)
        failed = [r for r in results if isinstance(r, QueueFullError)]
        assert failed and all("append failed" in str(r) for r in failed)
        committed = await gateway.store(lambda: db.execute("SELECT count(*) FROM events").fetchone()[0])
        assert committed == gateway.queue.rows == 1 + len(results) - len(failed)
    finally:
        await gateway.stop()
