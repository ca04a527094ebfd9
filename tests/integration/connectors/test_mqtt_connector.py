"""MQTT subscriber against real Mosquitto: ingest, bad payloads, ack-after-emit redelivery,
and resuming after a broker restart without loss (a private broker with persistence)."""

from __future__ import annotations

import asyncio
import json
import uuid

from devsim_rules import Collector, build_rules, device_type
from mosquitto_proc import PrivateMosquitto, Publisher

from connectors.mqtt import MqttConnector

OXI = device_type("pulse-oximeter", "mqtt", "push", ["vital", "alarm"])


def rules_for(port: int, prefix: str, client_id: str):
    return build_rules([OXI], [{"id": "OXI-02", "type": "pulse-oximeter", "location": "ICU1-BED02"}],
                       connectors={"mqtt": {"port": port, "topics": [f"{prefix}/+/events"], "client_id": client_id,
                                            "keepalive_s": 5, "reconnect_max_s": 0.5}})


def summary(seq: int) -> bytes:
    return json.dumps({"device": "OXI-02", "gateway": "GW-1", "seq": seq, "time": 1763700000.0 + seq,
                       "values": [{"code": "SPO2", "system": "ACME", "value": 90 + seq % 10, "unit": "%"}]}).encode()


async def wait_connected(conn: MqttConnector, timeout_s: float = 10.0) -> None:
    for _ in range(int(timeout_s / 0.02)):
        if conn.connected:
            await asyncio.sleep(0.1)  # the SUBACK follows the CONNACK
            return
        await asyncio.sleep(0.02)
    raise AssertionError("MQTT connector did not connect")


def test_ingest_bad_payloads_are_acked_and_reported_and_the_stream_carries_on():
    prefix, cid = f"t-{uuid.uuid4().hex[:8]}", f"hub-{uuid.uuid4().hex[:8]}"
    rules = rules_for(1883, prefix, cid)

    async def scenario():
        errors = []
        out = Collector()
        conn = MqttConnector.from_rules(rules, on_error=lambda topic, payload, exc: errors.append(exc))
        await conn.start(out.emit)
        await wait_connected(conn)
        pub = Publisher(1883, f"pub-{cid}")
        topic = f"{prefix}/OXI-02/events"
        for payload in (summary(1), b"{garbage", summary(2), (b'{"device": "OXI-99", "seq": 1, "time": 1, '
                        b'"values": [{"code": "X", "value": 1}]}'), summary(3)):
            assert pub.publish(topic, payload)
        assert await out.wait_for(lambda ev: len(ev) == 3)
        health = conn.health()
        await conn.stop()
        # a second session with the same client id: everything was acknowledged, nothing comes back
        again = Collector()
        conn2 = MqttConnector.from_rules(rules, on_error=lambda topic, payload, exc: errors.append(exc))
        await conn2.start(again.emit)
        await wait_connected(conn2)
        assert pub.publish(topic, summary(4))
        assert await again.wait_for(lambda ev: len(ev) >= 1)
        await asyncio.sleep(0.3)
        await conn2.stop()
        pub.close()
        return out.events, again.events, errors, health

    events, again, errors, health = asyncio.run(scenario())
    assert [e.seq for e in events] == [1, 2, 3]
    assert [str(e) for e in errors] == [("payload is not JSON: Expecting property name enclosed in double quotes: "
                                        "line 1 column 2 (char 1)"),
                                        "device: unknown device 'OXI-99' (not in the rules' devices)"]
    assert health["rejected"] == 2 and health["acked"] == 5 and health["status"] == "up"
    assert [e.seq for e in again] == [4]


def test_message_not_emitted_before_a_crash_is_redelivered():
    prefix, cid = f"t-{uuid.uuid4().hex[:8]}", f"hub-{uuid.uuid4().hex[:8]}"
    rules = rules_for(1883, prefix, cid)

    async def scenario():
        attempts = []

        async def failing_emit(event):  # downstream is down: emit never succeeds
            attempts.append(event)
            raise ConnectionError("downstream unavailable")

        conn = MqttConnector.from_rules(rules)
        await conn.start(failing_emit)
        await wait_connected(conn)
        pub = Publisher(1883, f"pub-{cid}")
        assert pub.publish(f"{prefix}/OXI-02/events", summary(7))
        for _ in range(250):
            if attempts:
                break
            await asyncio.sleep(0.02)
        await conn.stop()  # "crash": the message was never emitted, so never acknowledged
        out = Collector()
        conn2 = MqttConnector.from_rules(rules)
        await conn2.start(out.emit)
        assert await out.wait_for(lambda ev: len(ev) >= 1)
        await conn2.stop()
        pub.close()
        return attempts, out.events, conn.counts

    attempts, events, first_counts = asyncio.run(scenario())
    assert attempts and first_counts["acked"] == 0
    assert [e.seq for e in events] == [7] and events[0].event_id == attempts[0].event_id


def test_resumes_after_broker_restart_without_loss(tmp_path):
    broker = PrivateMosquitto(tmp_path)
    broker.start()
    prefix, cid = "ward", f"hub-{uuid.uuid4().hex[:8]}"
    rules = rules_for(broker.port, prefix, cid)
    topic = f"{prefix}/OXI-02/events"

    async def scenario():
        out = Collector()
        conn = MqttConnector.from_rules(rules)
        await conn.start(out.emit)
        await wait_connected(conn)
        pub = Publisher(broker.port, "device-gw-1")
        delivered = []
        for seq in range(1, 51):
            if await asyncio.to_thread(pub.publish, topic, summary(seq)):
                delivered.append(seq)
        await asyncio.to_thread(broker.stop)
        for _ in range(250):
            if not conn.connected:
                break
            await asyncio.sleep(0.02)
        await asyncio.to_thread(broker.start)  # same port, same persistence directory
        for seq in range(51, 101):
            if await asyncio.to_thread(pub.publish, topic, summary(seq)):
                delivered.append(seq)
        ok = await out.wait_for(lambda ev: set(delivered) <= {e.seq for e in ev}, timeout_s=30)
        health = conn.health()
        await conn.stop()
        pub.close()
        return ok, delivered, out.events, health

    try:
        ok, delivered, events, health = asyncio.run(scenario())
    finally:
        broker.stop()
    assert delivered == list(range(1, 101))  # the publisher got a PUBACK for every message
    missing = set(delivered) - {e.seq for e in events}
    assert ok and not missing, f"lost after broker restart: {sorted(missing)}"
    assert health["connections"] >= 2  # it really reconnected to the restarted broker


def test_messages_published_while_the_connector_is_stopped_arrive_after_its_restart():
    prefix, cid = f"t-{uuid.uuid4().hex[:8]}", f"hub-{uuid.uuid4().hex[:8]}"
    rules = rules_for(1883, prefix, cid)

    async def scenario():
        out = Collector()
        conn = MqttConnector.from_rules(rules)
        await conn.start(out.emit)
        await wait_connected(conn)  # the persistent session and its subscription now exist
        await conn.stop()
        pub = Publisher(1883, f"pub-{cid}")
        for seq in range(1, 21):  # the hub is down: the broker queues them for its session
            assert await asyncio.to_thread(pub.publish, f"{prefix}/OXI-02/events", summary(seq))
        conn2 = MqttConnector.from_rules(rules)
        await conn2.start(out.emit)
        ok = await out.wait_for(lambda ev: len(ev) >= 20)
        await conn2.stop()
        pub.close()
        return ok, out.events

    ok, events = asyncio.run(scenario())
    assert ok and sorted(e.seq for e in events) == list(range(1, 21))
