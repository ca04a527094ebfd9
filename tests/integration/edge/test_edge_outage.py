"""Outage: the link to the upstream is cut (TCP proxy) under steady device traffic, then restored.

Every event the gateway acknowledged arrives, in order per stream, once per event id; the ones
buffered during the outage arrive marked replayed with their original times and seq.
"""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from edge_support import (
    KafkaSink,
    MqttSink,
    TcpProxy,
    check_order,
    first_occurrences,
    free_port,
    parse_events,
    replayed,
)

from edge_buffer.gateway import Gateway
from edge_buffer.traffic import StreamSpec, SyntheticTraffic
from edge_buffer.upstream_kafka import KafkaUpstream
from edge_buffer.upstream_mqtt import MqttUpstream
from hub.events import DataClass, Device
from hub.rules.edge import EdgeRules
from hub.rules.models import RuleSet
from hub.testing.broker import tansu_binary

OUTAGE_S = 300.0  # the issue: at least 5 minutes of outage


def steady_streams(devices: int, vital_rate: float) -> list[StreamSpec]:
    specs = []
    for n in range(devices):
        device = Device(id=f"MON-{n:02d}", type="multi-parameter-monitor")
        bed = f"ICU1-BED{n:02d}"
        specs += [StreamSpec(device, DataClass.VITAL, vital_rate, bed), StreamSpec(device, DataClass.ALARM, 0.2, bed),
                  StreamSpec(device, DataClass.TREND, 0.5, bed)]
    return specs


async def wait_until(predicate, timeout: float, step: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(step)
    return predicate()


def assert_delivered(traffic: SyntheticTraffic, payloads: list[bytes], outage: tuple[float, float]):
    events, duplicates = first_occurrences(payloads)
    print(f"delivered={len(events)} duplicate_copies={duplicates} (dropped by event id, as the hub's stage 1 does)")
    acked = {a[0]: a for a in traffic.acked}
    got = {e["event_id"] for e in events}
    assert len(acked) == len(traffic.acked)
    assert got == set(acked), f"missing {len(set(acked) - got)}, unexpected {len(got - set(acked))}"
    check_order(events)
    parsed = parse_events(events)
    during = [e for e in parsed if outage[0] <= e.received_time < outage[1]]
    assert during and all(replayed(e) for e in during), "events buffered in the outage must be marked replayed"
    for e in parsed:  # original times and seq travel unchanged
        _, stream, seq, device_time = acked[e.event_id]
        assert (e.stream, e.seq, e.device_time) == (stream, seq, device_time)
    return parsed


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(OUTAGE_S + 240)
def test_mqtt_outage_of_five_minutes_loses_nothing(tmp_path, edge_mosquitto):
    asyncio.run(_mqtt_outage(tmp_path, edge_mosquitto))


async def _mqtt_outage(tmp_path: Path, broker_port: int) -> None:
    settings = EdgeRules(gateway_id=f"outage-{free_port()}", health_port=0, backoff_initial_s=1.0, backoff_max_s=10.0,
                         ack_timeout_s=10.0)
    proxy = TcpProxy("127.0.0.1", broker_port)
    await proxy.start()
    sink = MqttSink(broker_port, settings.mqtt_topic)  # the hub side, directly on the broker
    traffic = SyntheticTraffic(steady_streams(devices=4, vital_rate=4.0), tick_s=0.25)
    gateway = Gateway(RuleSet(edge=settings), tmp_path / "buffer.db", MqttUpstream("127.0.0.1", proxy.port, settings),
                      [traffic])
    await gateway.start()
    try:
        assert await wait_until(lambda: len(sink.snapshot()) >= 100, 30), "live traffic did not flow"
        live = parse_events(first_occurrences(sink.snapshot())[0])
        assert not any(e.provenance.replayed for e in live)

        await proxy.cut()
        outage_started = time.time()
        delivered_at_cut = len(sink.snapshot())
        samples = []
        while time.time() - outage_started < OUTAGE_S:  # steady traffic keeps arriving at the gateway
            await asyncio.sleep(30)
            samples.append((gateway.queue.rows, gateway.health()["status"],
                            gateway.metrics.value("devsync_edge_upstream_up", {"upstream": "mqtt"})))
        assert len(sink.snapshot()) <= delivered_at_cut + 5, "the proxy did not cut the link"
        depths = [s[0] for s in samples]
        assert depths == sorted(depths) and depths[-1] >= 4000, f"buffer did not grow through the outage: {depths}"
        assert all(status == "degraded" and up == 0 for _, status, up in samples)
        assert gateway.metrics.value("devsync_edge_queue_oldest_age_seconds") >= OUTAGE_S - 30

        outage_ended = time.time()
        await proxy.restore()
        replay_rates: list[float] = []  # the gauge is sampled while the backlog replays (it decays once drained)

        def sample_replay_rate() -> bool:
            replay_rates.append(gateway.metrics.value("devsync_edge_replay_rate_events_per_second"))
            return False

        await wait_until(sample_replay_rate, 5)  # traffic keeps flowing while the backlog replays
        await traffic.stop()
        assert await wait_until(lambda: sample_replay_rate() or (gateway.queue.rows == 0 and gateway.queue.leased == 0),
                                120), "backlog not drained"
        assert await wait_until(lambda: len(first_occurrences(sink.snapshot())[0]) >= len(traffic.acked), 30)
        parsed = assert_delivered(traffic, sink.snapshot(), (outage_started, outage_ended))
        assert len(parsed) >= 5000
        m = gateway.metrics
        assert m.value("devsync_edge_forwarded_total", {"replayed": "true"}) >= depths[-1]
        assert m.value("devsync_edge_upstream_failures_total", {"upstream": "mqtt"}) >= 1
        assert m.value("devsync_edge_upstream_up", {"upstream": "mqtt"}) == 1
        assert max(replay_rates) > 0, "the replay rate gauge showed the replay"
    finally:
        await gateway.stop()
        await proxy.stop()
        sink.close()


# ---------------- Kafka: a broker that advertises the proxy, so every client goes through it ----------------


@pytest.fixture
def proxied_kafka():
    """A private Tansu whose advertised listener is the proxy port: cutting the proxy cuts the broker off."""
    broker_port, proxy_port = free_port(), free_port()
    log = open(tempfile.mkstemp(prefix="tansu-edge-", suffix=".log")[1], "wb")  # noqa: SIM115 - closed after the broker
    proc = subprocess.Popen(
        [str(tansu_binary()), "broker", "--listener-url", f"tcp://127.0.0.1:{broker_port}",
         "--advertised-listener-url", f"tcp://127.0.0.1:{proxy_port}"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    yield broker_port, proxy_port
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


@pytest.mark.integration
@pytest.mark.timeout(150)
def test_kafka_outage_replays_in_order(tmp_path, proxied_kafka):
    asyncio.run(_kafka_outage(tmp_path, *proxied_kafka))


async def _kafka_outage(tmp_path: Path, broker_port: int, proxy_port: int) -> None:
    proxy = TcpProxy("127.0.0.1", broker_port, listen_port=proxy_port)
    await proxy.start()
    settings = EdgeRules(gateway_id="kafka-outage", health_port=0, backoff_initial_s=0.5, backoff_max_s=2.0,
                         ack_timeout_s=5.0, kafka_partitions=3, kafka_topic_prefix=f"outage{free_port()}.")
    bootstrap = f"127.0.0.1:{proxy_port}"
    traffic = SyntheticTraffic(steady_streams(devices=3, vital_rate=10.0), tick_s=0.1)
    upstream = KafkaUpstream(bootstrap, settings, {"socket.connection.setup.timeout.ms": 3000})
    gateway = Gateway(RuleSet(edge=settings), tmp_path / "buffer.db", upstream, [traffic])
    await gateway.start()
    sink = None
    try:
        assert await wait_until(lambda: gateway.forwarder.connected and len(traffic.acked) > 100, 30)
        await proxy.cut()
        outage_started = time.time()
        await asyncio.sleep(10)
        assert gateway.queue.rows > 200 and not gateway.forwarder.connected
        outage_ended = time.time()
        await proxy.restore()
        await asyncio.sleep(2)
        await traffic.stop()
        assert await wait_until(lambda: gateway.queue.rows == 0 and gateway.queue.leased == 0, 60), (
            f"backlog not drained: {gateway.forwarder.last_error}")
        sink = KafkaSink(bootstrap, settings.kafka_topic, settings.kafka_partitions)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(first_occurrences(sink.payloads)[0]) < len(traffic.acked):
            await asyncio.to_thread(sink.poll, 0.5)
        assert_delivered(traffic, sink.payloads, (outage_started, outage_ended))
        # key = stream, so one stream lives on one partition (the order the hub relies on)
        assert all(k.decode() == orjson_stream(v) for k, v in zip(sink.keys, sink.payloads))
    finally:
        await gateway.stop()
        await proxy.stop()
        if sink is not None:
            sink.close()


def orjson_stream(value: bytes) -> str:
    import orjson

    return orjson.loads(value)["stream"]
