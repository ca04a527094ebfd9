"""A message the broker can never take (larger than allowed) is moved aside with its reason and
does not block the rows behind it."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest
from edge_support import KafkaSink, check_order, first_occurrences, free_port

from edge_buffer.gateway import Gateway
from edge_buffer.traffic import StreamSpec, build_event
from edge_buffer.upstream_kafka import KafkaUpstream
from hub.events import DataClass, Device, Waveform
from hub.rules.edge import EdgeRules
from hub.rules.models import RuleSet


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_oversized_event_is_rejected_and_kept_not_blocking(tmp_path, kafka_bootstrap):
    asyncio.run(_oversized(tmp_path, kafka_bootstrap))


async def _oversized(tmp_path, bootstrap: str) -> None:
    settings = EdgeRules(gateway_id="reject", health_port=0, kafka_partitions=1,
                         kafka_topic_prefix=f"reject{free_port()}.")
    upstream = KafkaUpstream(bootstrap, settings, {"message.max.bytes": 4000})
    gateway = Gateway(RuleSet(edge=settings), tmp_path / "buffer.db", upstream, [])
    await gateway.start()
    device = Device(id="MON-01", type="multi-parameter-monitor")
    vitals = StreamSpec(device, DataClass.VITAL, 1.0)
    waves = StreamSpec(device, DataClass.WAVEFORM, 1.0)
    try:
        before = [build_event(vitals, s, 1.7e9 + s) for s in range(10)]
        huge = build_event(waves, 0, 1.7e9)
        huge = huge.with_changes(waveform=Waveform(sample_rate_hz=500, start_time=1.7e9, leads=("I", "II", "III"),
                                                   samples=tuple(tuple(range(-500, 500)) for _ in range(3))))
        after = [build_event(vitals, s, 1.7e9 + s) for s in range(10, 20)]
        for event in [*before, huge, *after]:
            await gateway.emit(event)
        for _ in range(100):
            if gateway.queue.rows == 0 and gateway.queue.leased == 0:
                break
            await asyncio.sleep(0.1)
        assert gateway.queue.rows == 0
        assert gateway.metrics.value("devsync_edge_rejected_total", {"upstream": "kafka"}) == 1
    finally:
        await gateway.stop()
    db = sqlite3.connect(tmp_path / "buffer.db")
    kept = db.execute("SELECT event_id, reason, length(payload) FROM rejected").fetchall()
    db.close()
    assert len(kept) == 1 and kept[0][0] == huge.event_id and "too large" in kept[0][1].lower()
    assert kept[0][2] > 4000  # the whole event is kept, not a truncated copy
    sink = KafkaSink(bootstrap, settings.kafka_topic, 1)
    try:
        for _ in range(40):
            sink.poll(0.5)
            if len(sink.payloads) >= 20:
                break
        events, _ = first_occurrences(sink.payloads)
        assert [e["seq"] for e in events] == list(range(20))
        check_order(events)
    finally:
        sink.close()
