"""Fault: the Kafka broker is stopped (SIGTERM) for 20 s and started again on the same port, under load.

Two producers keep producing through the whole run, as in production:
- an edge gateway (edge_buffer: SQLite store-and-forward, KafkaUpstream) fed by 3 monitors
  (vitals at 10/s, alarms, trends), which buffers while the broker is away and replays after;
- a hub-side connector publishing straight to Kafka with the idempotent KafkaPublisher
  (hub/runtime/kafka_producer.py), whose device re-sends an event until publish() succeeds.
A consumer (the hub's side, the far end) reads both raw topics from the beginning the whole time.

Storage: no storage engine of this Tansu build survives a restart usably (see kafka_faults_support),
so the broker runs on memory storage and comes back EMPTY: the topics are recreated with
ensure_topics (same partition count) right after the restart, and the gateway's upstream creates
its raw topic itself on reconnect. What that proves: both producers notice the outage, keep taking
device data (the gateway buffers on disk, the connector's devices wait and re-send), survive a broker
that lost their idempotent-producer state (a fatal OUT_OF_ORDER_SEQUENCE_NUMBER for the connector's
producer), replay in order per stream and lose nothing they were not told was stored. What it does
NOT prove: that records a broker acknowledged survive its restart (a memory broker loses them; a
real Kafka keeps them on disk). Those records are the ones the old broker acknowledged but the far
end had not read when it exited; they are left out of `sent` and reported as
`held_only_by_dead_broker` (usually none or a handful).

What is counted, at the far end (records read from the old broker until it exited, then everything
in the new broker), after the hub's stage-1 dedupe by event id (edge_faults_support.through_hub_dedupe):
- sent: events the gateway acknowledged to its connector (after its buffer commit) and events the
  connector saw acknowledged by publish(), less `held_only_by_dead_broker`;
- delivered: sent event ids that passed the dedupe (charted once);
- duplicated: what the dedupe let through a second time, plus event ids nobody sent.
Transport copies of one event id (re-sends after the outage) are expected on a Kafka topic; they
are the `transport_copies` figure. Order: per stream, the first copies have strictly increasing seq.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import orjson
import pytest
from edge_faults_support import through_hub_dedupe, wait_until  # puts tests/integration/edge on sys.path
from edge_support import check_order, free_port
from fault_report import FaultCounts, report
from kafka_faults_support import effect_counts

from edge_buffer.gateway import Gateway
from edge_buffer.traffic import StreamSpec, SyntheticTraffic
from edge_buffer.upstream import OutgoingMessage, SendResult
from edge_buffer.upstream_kafka import KafkaUpstream
from hub.errors import SinkError
from hub.events import DataClass, Device
from hub.rules.edge import EdgeRules
from hub.rules.models import RuleSet
from hub.runtime.kafka_producer import KafkaPublisher, producer_config
from hub.runtime.kafka_read import ReadRecord, follow_topics
from hub.runtime.kafka_topics import TopicSpec, ensure_topics
from hub.testing.broker import start_broker

pytestmark = [pytest.mark.integration, pytest.mark.faults]
OUTAGE_S = 20.0
LIVE_S = 5.0  # traffic before the stop and after the restart
RECOVERY_S = 40.0  # the connector's publisher must publish again within this long after the restart
PARTITIONS = 4  # what Tansu gives an auto-created topic: a publish racing ensure_topics cannot mismatch


def monitor_streams(prefix: str, devices: int) -> list[StreamSpec]:
    specs = []
    for n in range(devices):
        device = Device(id=f"{prefix}-{n:02d}", type="multi-parameter-monitor")
        bed = f"ICU1-BED{n:02d}"
        specs += [StreamSpec(device, DataClass.VITAL, 10.0, bed), StreamSpec(device, DataClass.ALARM, 0.5, bed),
                  StreamSpec(device, DataClass.TREND, 1.0, bed)]
    return specs


class AckRecordingUpstream:
    """The gateway's real KafkaUpstream, noting which event ids the broker acknowledged."""

    def __init__(self, inner: KafkaUpstream):
        self.inner = inner
        self.acked: set[str] = set()

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    async def send(self, batch: list[OutgoingMessage]) -> SendResult:
        result = await self.inner.send(batch)
        values = {m.row_id: m.value for m in batch}
        self.acked.update(orjson.loads(values[row_id])["event_id"] for row_id in result.acked)
        return result


def resending(publisher: KafkaPublisher):
    """emit for a connector on the Kafka path: the device re-sends until the hub acknowledges."""
    async def emit(event) -> None:
        while True:
            try:
                await publisher.publish(event)
                return
            except SinkError as exc:
                await asyncio.sleep(exc.retry_after or 0.5)
    return emit


class Follower:
    """The far end on one broker's lifetime: reads the topics from the beginning until stopped."""

    def __init__(self, base: dict, topics: list[str]):
        self.records: list[ReadRecord] = []
        self.ids: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=follow_topics, args=(base, topics, self._add),
                                        kwargs={"stop": self._stop.is_set, "max_s": 120.0}, daemon=True)
        self._thread.start()

    def _add(self, record: ReadRecord) -> None:
        self.records.append(record)
        self.ids.add(orjson.loads(record.value)["event_id"])

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)

    def payloads(self) -> list[bytes]:
        return [r.value for r in sorted(self.records, key=lambda r: (r.topic, r.partition, r.offset))]


@pytest.mark.timeout(150)
def test_broker_stop_and_restart_loses_nothing_and_charts_nothing_twice(tmp_path):
    asyncio.run(_scenario(tmp_path))


async def _scenario(tmp_path: Path) -> None:
    started = time.monotonic()
    broker = start_broker()
    port = int(broker.bootstrap.rsplit(":", 1)[1])
    base = {"bootstrap.servers": broker.bootstrap}
    prefix = f"restart{free_port()}."
    settings = EdgeRules(gateway_id="broker-restart", health_port=0, backoff_initial_s=0.5, backoff_max_s=2.0,
                         ack_timeout_s=5.0, kafka_partitions=PARTITIONS, kafka_topic_prefix=prefix)
    topics = [settings.kafka_topic, f"{prefix}connector.raw"]
    specs = [TopicSpec(topic, PARTITIONS, 1) for topic in topics]
    ensure_topics(base, specs)

    old_far_end = Follower(base, topics)
    new_far_end = None
    edge_traffic = SyntheticTraffic(monitor_streams("EDGE", 3), tick_s=0.1, run_id="edge")
    upstream = AckRecordingUpstream(KafkaUpstream(broker.bootstrap, settings, {"socket.connection.setup.timeout.ms": 3000}))
    gateway = Gateway(RuleSet(edge=settings), tmp_path / "buffer.db", upstream, [edge_traffic])
    publisher = KafkaPublisher({**producer_config(base), "log_level": 2}, topics[1])
    hub_traffic = SyntheticTraffic(monitor_streams("HUB", 2), tick_s=0.1, run_id="hub")
    await gateway.start()
    await hub_traffic.start(resending(publisher))
    try:
        assert await wait_until(lambda: gateway.forwarder.connected and len(edge_traffic.acked) > 100
                                and len(hub_traffic.acked) > 100, 30), "live traffic did not flow"
        await asyncio.sleep(LIVE_S)

        stop_requested = time.time()
        await asyncio.to_thread(broker.stop)  # SIGTERM: Tansu drains its connections (some s), then exits
        outage_started = time.time()
        old_far_end.stop()
        acked_at_stop = len(edge_traffic.acked)
        await asyncio.sleep(OUTAGE_S)
        buffered = gateway.queue.rows
        acked_in_outage = len(edge_traffic.acked) - acked_at_stop
        assert not gateway.forwarder.connected and buffered > 200, (
            f"the gateway did not notice the outage (connected={gateway.forwarder.connected}, buffered={buffered})")
        # stored by the old broker only (acknowledged, never read by the far end): a memory broker's loss
        held_by_dead_broker = (upstream.acked | {a[0] for a in hub_traffic.acked}) - old_far_end.ids
        connector_acked_before = len(hub_traffic.acked)

        broker = await asyncio.to_thread(start_broker, port)  # same port, empty (memory storage)
        outage_ended = time.time()
        recreated = await asyncio.to_thread(ensure_topics, base, specs)
        new_far_end = Follower(base, topics)
        # messages queued through the outage time out (message.timeout.ms 30 s) or hit a fatal error
        # first: the devices re-send until the publisher takes their events again
        recovered = await wait_until(lambda: len(hub_traffic.acked) > connector_acked_before, RECOVERY_S)
        connector_recovery_s = time.time() - outage_ended
        await asyncio.sleep(LIVE_S)
        await edge_traffic.stop()
        await hub_traffic.stop()
        assert await wait_until(lambda: gateway.queue.rows == 0 and gateway.queue.leased == 0, 45), (
            f"edge backlog not drained: {gateway.forwarder.last_error}")
        sent = {a[0] for a in edge_traffic.acked} | {a[0] for a in hub_traffic.acked}
        expected_in_new = sent - held_by_dead_broker - old_far_end.ids
        assert await wait_until(lambda: expected_in_new <= new_far_end.ids, 30), (
            f"{len(expected_in_new - new_far_end.ids)} events never reached the restarted broker")
        await asyncio.sleep(2.0)  # late copies are counted too
    finally:
        await gateway.stop()
        await hub_traffic.stop()
        await asyncio.to_thread(publisher.close, 10.0)
        old_far_end.stop()
        if new_far_end is not None:
            new_far_end.stop()
        await asyncio.to_thread(broker.stop)

    assert recovered, f"the connector's publisher did not publish again within {RECOVERY_S:g} s of the restart"
    far = through_hub_dedupe(old_far_end.payloads() + new_far_end.payloads())
    check_order(far.events)  # per stream, first copies in partition order
    counted = sent - held_by_dead_broker
    effect = effect_counts(counted, [e["event_id"] for e in far.events])
    report(FaultCounts(
        "kafka-broker-restart-20s", sent=len(counted), delivered=effect.delivered,
        duplicated=far.duplicated + effect.duplicated,
        figures={"storage": "memory", "outage_s": round(outage_ended - outage_started, 1),
                 "broker_shutdown_s": round(outage_started - stop_requested, 1),
                 "connector_recovery_s": round(connector_recovery_s, 1),
                 "topics_recreated": len(recreated.created), "edge_sent": len(edge_traffic.acked),
                 "connector_sent": len(hub_traffic.acked), "edge_buffered_at_restart": buffered,
                 "edge_acked_during_outage": acked_in_outage, "held_only_by_dead_broker": len(held_by_dead_broker),
                 "transport_copies": far.transport_copies, "wall_s": round(time.monotonic() - started, 1)}))
