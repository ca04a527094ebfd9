"""Mutual TLS from the gateway to the MQTT broker (TLS 1.2+, client certificate)."""

from __future__ import annotations

import asyncio

import pytest
from edge_support import MqttSink, first_occurrences, make_tls_files, start_tls_mosquitto

from edge_buffer.errors import EdgeError, UpstreamError
from edge_buffer.gateway import Gateway
from edge_buffer.traffic import StreamSpec, build_event
from edge_buffer.upstream_mqtt import MqttUpstream
from hub.events import DataClass, Device
from hub.rules.edge import EdgeRules
from hub.rules.models import RuleSet


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_mqtt_upstream_over_mutual_tls(tmp_path):
    tls = make_tls_files(tmp_path / "tls")
    proc, plain_port, tls_port = start_tls_mosquitto(tls)
    try:
        asyncio.run(_send_over_tls(tmp_path, tls, plain_port, tls_port))
    finally:
        proc.terminate()
        proc.wait(10)


async def _send_over_tls(tmp_path, tls, plain_port: int, tls_port: int) -> None:
    settings = EdgeRules(gateway_id="edge-tls", health_port=0, mqtt_tls_ca=str(tls["ca.pem"]),
                         mqtt_tls_cert=str(tls["client.pem"]), mqtt_tls_key=str(tls["client.key"]))
    sink = MqttSink(plain_port, settings.mqtt_topic)
    upstream = MqttUpstream("127.0.0.1", tls_port, settings)
    assert upstream.target.startswith("mqtts://")
    gateway = Gateway(RuleSet(edge=settings), tmp_path / "buffer.db", upstream, [])
    await gateway.start()
    try:
        spec = StreamSpec(Device(id="OXI-02", type="pulse-oximeter"), DataClass.VITAL, 1.0)
        sent = [build_event(spec, seq, 1.7e9 + seq) for seq in range(20)]
        for event in sent:
            await gateway.emit(event)
        for _ in range(100):
            if len(sink.snapshot()) >= 20:
                break
            await asyncio.sleep(0.1)
        events, _ = first_occurrences(sink.snapshot())
        assert [e["event_id"] for e in events] == [e.event_id for e in sent]
    finally:
        await gateway.stop()
        sink.close()

    # without the client certificate the broker refuses the session: nothing is acknowledged or lost
    no_cert = EdgeRules(gateway_id="edge-tls", mqtt_tls_ca=str(tls["ca.pem"]), ack_timeout_s=3)
    anonymous = MqttUpstream("127.0.0.1", tls_port, no_cert)
    with pytest.raises(UpstreamError):
        await anonymous.connect()
    await anonymous.close()


def test_bad_tls_file_fails_at_start_with_the_field(tmp_path):
    with pytest.raises(EdgeError, match="edge.mqtt_tls_ca"):
        MqttUpstream("127.0.0.1", 8883, EdgeRules(mqtt_tls_ca=str(tmp_path / "missing.pem")))
