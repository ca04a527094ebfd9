"""MQTT ingest benchmark: messages/s from a QoS 1 publisher through a real Mosquitto into MqttConnector.

    rate = measure_mqtt_ingest(20_000)          # broker at 127.0.0.1:1883

The publisher is `mosquitto_pub -l` (Debian mosquitto-clients: a separate C process, like an edge
gateway; a paho client in a thread when it is not installed, which itself tops out near 2,000
messages/s here) publishing canonical event JSON at QoS 1 as fast as the broker takes it; the connector decodes each message, awaits a
trivial emit and only then acknowledges it. The figure is the rate between the first and the
last emitted event while the publisher floods the broker: the connector's ceiling,
acknowledgements included. Used by
`devsync bench connectors` (figure `mqtt_ingest_msgs_per_s`).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import threading
import time
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from connectors.mqtt import MqttConnector
from hub.events import DataClass, Device, Event, EventKind, Provenance
from hub.rules.connectors import MqttSubscription
from hub.rules.models import RuleSet


def sample_payloads(n: int, device_id: str = "OXI-BENCH") -> list[bytes]:
    device = Device(id=device_id, type="pulse-oximeter")
    start = time.time()
    return [
        Event(event_id=f"bench-{i}", kind=EventKind.NUMERIC, data_class=DataClass.VITAL, device=device,
              stream=f"{device_id}/spo2", seq=i, device_time=start + i, received_time=start + i,
              code_sent="150456", code_system_sent="MDC", value_sent=float(90 + i % 10), unit_sent="262688",
              provenance=Provenance(connector="edge", gateway="GW-BENCH")).to_json()
        for i in range(n)
    ]


def _publish_all(host: str, port: int, topic: str, payloads: list[bytes], started: threading.Event) -> None:
    if shutil.which("mosquitto_pub"):
        started.set()
        subprocess.run(["mosquitto_pub", "-h", host, "-p", str(port), "-t", topic, "-q", "1", "-l", "-M", "100",
                        "-i", f"bench-pub-{uuid.uuid4().hex[:8]}"],
                       input=b"\n".join(payloads) + b"\n", check=True, timeout=600)
        return
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{uuid.uuid4().hex[:8]}")
    client.max_inflight_messages_set(200)
    client.max_queued_messages_set(0)
    client.connect(host, port, keepalive=30)
    client.loop_start()
    started.set()
    infos = [client.publish(topic, payload, qos=1) for payload in payloads]
    for info in infos:
        info.wait_for_publish(timeout=60)
    client.disconnect()
    client.loop_stop()


async def measure_mqtt_ingest_detail(n_messages: int, host: str = "127.0.0.1", port: int = 1883) -> dict:
    """{'msgs_per_s', 'msgs_per_cpu_s', 'published', 'received'}: the rate is taken between the first and the last
    message the connector emitted while the publisher floods the broker, so it is the connector's
    own ceiling; `msgs_per_cpu_s` divides by this process's CPU time instead (steadier on a busy
    machine; the publisher is another process). `received` < `published` means the broker dropped messages for the subscriber
    (Mosquitto's max_queued_messages, default 1000, see README-mqtt.md)."""
    tag = uuid.uuid4().hex[:8]
    settings = MqttSubscription(host=host, port=port, topics=[f"devsync-bench/{tag}/events"],
                                client_id=f"devsync-bench-{tag}", protocol_version="5", session_expiry_s=0)
    conn = MqttConnector(settings, RuleSet())
    payloads = sample_payloads(n_messages)
    stamps: list[float] = []
    cpu: list[float] = []

    async def emit(event: Event) -> None:
        stamps.append(time.perf_counter())
        if len(stamps) == 1:
            cpu[:] = [time.process_time()] * 2
        else:
            cpu[1] = time.process_time()

    await conn.start(emit)
    try:
        for _ in range(500):
            if conn.connected:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # SUBACK
        await asyncio.to_thread(_publish_all, host, port, f"devsync-bench/{tag}/events", payloads,
                                threading.Event())
        seen = -1
        for _ in range(600):  # until nothing new arrives for 0.5 s (bounded: 5 min)
            if len(stamps) == seen or len(stamps) >= n_messages:
                break
            seen = len(stamps)
            await asyncio.sleep(0.5)
    finally:
        await conn.stop()
    rate = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0
    per_cpu = (len(stamps) - 1) / (cpu[1] - cpu[0]) if len(stamps) > 1 and cpu[1] > cpu[0] else 0.0
    return {"msgs_per_s": rate, "msgs_per_cpu_s": per_cpu, "published": n_messages, "received": len(stamps)}


def measure_mqtt_ingest(n_messages: int, host: str = "127.0.0.1", port: int = 1883) -> float:
    """Messages per second through the real broker into the connector (ack after emit)."""
    return asyncio.run(measure_mqtt_ingest_detail(n_messages, host, port))["msgs_per_s"]


if __name__ == "__main__":
    detail = asyncio.run(measure_mqtt_ingest_detail(20_000))
    print(f"mqtt_ingest_msgs_per_s {detail['msgs_per_s']:.0f}, per CPU second {detail['msgs_per_cpu_s']:.0f} "
          f"(received {detail['received']} of {detail['published']})")
