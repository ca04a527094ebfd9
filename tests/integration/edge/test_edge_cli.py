"""`devsync edge` as a process: rules -> simulated devices of this gateway -> buffer -> MQTT,
with /healthz and /metrics on the port from the rules, and a clean stop on SIGTERM."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from edge_support import MqttSink, first_occurrences, free_port

RULES = Path(__file__).resolve().parents[3] / "rules"


def gateway_rule_folder(tmp_path: Path, health_port: int) -> Path:
    folder = tmp_path / "rules"
    shutil.copytree(RULES, folder)
    ward = folder / "ward.yaml"
    ward.write_text("\n".join(
        line.replace("location:", "gateway: edge-cli, location:") if "location: ICU1-BED01" in line else line
        for line in ward.read_text().splitlines()) + "\n")
    (folder / "edge.yaml").write_text(
        f"version: 1\nedge:\n  gateway_id: edge-cli\n  health_port: {health_port}\n  mqtt_topic_prefix: devsync/test\n")
    return folder


def get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_devsync_edge_runs_forwards_and_reports_health(tmp_path, edge_mosquitto):
    health_port = free_port()
    rules = gateway_rule_folder(tmp_path, health_port)
    sink = MqttSink(edge_mosquitto, "devsync/test/edge-cli/events")
    buffer = tmp_path / "buffer.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "edge", "--rules", str(rules), "--buffer", str(buffer),
         "--mqtt", f"127.0.0.1:{edge_mosquitto}", "--simulate", "--simulate-rate-scale", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        health = None
        for _ in range(100):
            try:
                status, body = get(health_port, "/healthz")
                health = json.loads(body)
                if status == 200 and health["status"] == "up" and len(sink.snapshot()) >= 50:
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        assert health and health["status"] == "up", (health, proc.stderr.read1().decode()[-2000:] if proc.poll() else "")
        assert health["upstream"]["connected"] and health["gateway"] == "edge-cli"
        status, metrics = get(health_port, "/metrics")
        assert status == 200
        for name in (b"devsync_edge_queue_depth_events", b"devsync_edge_queue_oldest_age_seconds",
                     b"devsync_edge_queue_bytes", b"devsync_edge_shed_total", b"devsync_edge_upstream_up",
                     b"devsync_edge_replay_rate_events_per_second"):
            assert name in metrics
        assert get(health_port, "/nope")[0] == 404

        events, _ = first_occurrences(sink.snapshot())
        devices = {e["device"]["id"] for e in events}
        assert devices <= {"MON-01", "ART-01", "NIBP-01", "PUMP-01"} and "MON-01" in devices
        assert all(e["provenance"]["gateway"] == "edge-cli" for e in events)

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, proc.stderr.read().decode()[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
        sink.close()
    db = sqlite3.connect(buffer)
    assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    db.close()


def test_devsync_edge_without_target_explains(tmp_path, capsys):
    from hub.cli import main

    assert main(["edge", "--rules", str(RULES), "--buffer", str(tmp_path / "b.db")]) == 2
    assert "--bootstrap or --mqtt" in capsys.readouterr().err


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_gateway_runs_the_rules_connectors_mllp_to_mqtt(tmp_path, edge_mosquitto):
    """A real PCD-01 message over MLLP to the connector the rules assign to this gateway: AA only after
    the buffer committed it, then forwarded over MQTT with the gateway in the provenance."""
    import asyncio

    asyncio.run(_mllp_through_gateway(tmp_path, edge_mosquitto))


async def _mllp_through_gateway(tmp_path: Path, broker_port: int) -> None:
    import asyncio

    import hl7
    from hl7.mllp import open_hl7_connection

    from edge_buffer.gateway import Gateway, build_gateway_connectors
    from edge_buffer.upstream_mqtt import MqttUpstream
    from hub.rules.load import load_rules

    folder = tmp_path / "rules"
    shutil.copytree(RULES, folder)
    ward = folder / "ward.yaml"
    ward.write_text("\n".join(line.replace("{id: MON-06,", "{id: MON-06, gateway: edge-mllp,")
                              for line in ward.read_text().splitlines()) + "\n")
    mllp_port = free_port()
    edge_yaml = "version: 1\nedge:\n  gateway_id: edge-mllp\n  health_port: 0\n"
    shipped = folder / "connectors.yaml"  # the shipped listeners, when there: move MLLP to a free port
    if shipped.exists() and "port: 2575" in shipped.read_text():
        shipped.write_text(shipped.read_text().replace("port: 2575", f"port: {mllp_port}"))
    else:
        edge_yaml += f"connectors:\n  mllp:\n    port: {mllp_port}\n"
    (folder / "edge.yaml").write_text(edge_yaml)
    rules = load_rules(folder)
    connectors = build_gateway_connectors(rules)
    assert [type(c).__name__ for c in connectors] == ["MllpConnector"]
    sink = MqttSink(broker_port, rules.edge.mqtt_topic)
    gateway = Gateway(rules, tmp_path / "buffer.db", MqttUpstream("127.0.0.1", broker_port, rules.edge), connectors)
    await gateway.start()
    try:
        raw = (RULES.parent.parent / "shared" / "data" / "hl7v2" / "ihe_pcd01_philips_physio_monitor.hl7").read_text()
        reader, writer = await open_hl7_connection("127.0.0.1", mllp_port)
        writer.writemessage(hl7.parse(raw.replace("\n", "\r").strip("\r")))
        await writer.drain()
        ack = await asyncio.wait_for(reader.readmessage(), 10)
        writer.close()
        assert str(ack.segment("MSA")[1]) == "AA", str(ack)
        appended = gateway.metrics.value("devsync_edge_appended_total", {"data_class": "vital"})
        assert appended >= 3
        for _ in range(100):
            if len(sink.snapshot()) >= appended:
                break
            await asyncio.sleep(0.1)
        events, _ = first_occurrences(sink.snapshot())
        assert len(events) >= appended
        assert {e["provenance"]["gateway"] for e in events} == {"edge-mllp"}
        assert any(e["code_sent"] == "150021" and e["value_sent"] == 117 for e in events)
    finally:
        await gateway.stop()
        sink.close()
