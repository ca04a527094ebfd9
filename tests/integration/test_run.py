"""`devsync run` as a real process: connectors from the rules, an independent MLLP client
(python-hl7) sends an ADT admission and a PCD-01 message from a bed's monitor, SIGTERM drains
and the process exits 0 with the observations written in the demo layout."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import hl7
from hl7.mllp import open_hl7_connection

from hub.render import RenderContext, build_oru_r01
from hub.render.samples import sample_bed
from hub.rules.load import load_rules
from hub.testing.broker import free_port

ROOT = Path(__file__).resolve().parents[2]
DEVSYNC = str(Path(sys.executable).parent / "devsync")
ADT_A01 = ("MSH|^~\\&|ADT|HOSP|DEVSYNC|HUB|20261121100000||ADT^A01^ADT_A01|ADT0001|P|2.6\r"
           "EVN|A01|20261121090000\r"
           "PID|||MRN555^^^^MR||Test^Run\r"
           "PV1||I|ICU1^^BED01||||||||||||||||V555\r")


def rules_for_test(tmp_path: Path) -> Path:
    folder = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", folder)
    (folder / "connectors.yaml").write_text(
        "version: 1\nconnectors:\n  mllp: {host: 127.0.0.1, port: 2575}\n"
        "  http: {host: 127.0.0.1, port: 8080, token_env: DEVSYNC_TEST_TOKEN}\n"
        f"  mqtt: {{host: 127.0.0.1, port: 1883, client_id: devsync-run-test-{os.getpid()}, "
        f"topics: [devsync-run-test-{os.getpid()}/+/events]}}\n")
    return folder


async def send(port: int, messages: list[str]) -> list[str]:
    reader, writer = await open_hl7_connection("127.0.0.1", port)
    acks = []
    try:
        for message in messages:
            writer.writemessage(hl7.parse(message))
            acks.append(str(await asyncio.wait_for(reader.readmessage(), 10)))
    finally:
        writer.close()
    return acks


def wait_for_line(proc: subprocess.Popen, text: str, timeout_s: float = 60) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if text in line:
            return line
        if proc.poll() is not None:
            raise AssertionError(f"devsync run exited early: {proc.stderr.read()[-2000:]}")
    raise AssertionError(f"no '{text}' within {timeout_s}s")


def start_run(rules_dir: Path, cwd: Path, *options: str) -> tuple[subprocess.Popen, int]:
    """`devsync run` with the MLLP and HTTP listeners on free ports (and `options`); (process, MLLP port)."""
    mllp, http = free_port(), free_port()
    proc = subprocess.Popen(
        [DEVSYNC, "run", "--rules", str(rules_dir), "--mllp-port", str(mllp), "--http-port", str(http), *options,
         "--metrics-port", "0", "--log-level", "WARNING"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "DEVSYNC_TEST_TOKEN": "s3cret"}, cwd=cwd)
    return proc, mllp


def test_run_ingests_over_mllp_and_drains_on_sigterm(tmp_path):
    rules_dir = rules_for_test(tmp_path)
    out = tmp_path / "out"
    proc, mllp = start_run(rules_dir, tmp_path, "--out", str(out))
    try:
        wait_for_line(proc, "connector(s) up")
        rules = load_rules(rules_dir)
        now = time.time()
        oru = build_oru_r01([e for e in sample_bed(rules, t=now - 5) if e.device.id in ("MON-01", "ART-01")],
                            RenderContext.from_rules(rules), control_id="RUNTEST1", message_time=now)
        acks = asyncio.run(send(mllp, [ADT_A01, oru]))
        assert all("MSA|AA|" in ack for ack in acks), acks
        time.sleep(2)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr[-2000:]
    assert "stopped cleanly" in stdout
    messages = [p.read_bytes().decode() for p in (out / "hl7v2").glob("*.hl7")]
    assert messages, "observations reached the HL7 v2 output"
    assert all("PID|||MRN555^^^^MR" in m for m in messages), "bound to the admitted patient"
    assert any("150017^MDC_PRESS_BLD_ART_SYS" in m for m in messages), "the arterial line won systolic BP"


def test_run_with_bootstrap_publishes_what_it_acknowledges_to_the_raw_topic(tmp_path, kafka_bootstrap):
    """`devsync run --bootstrap`: the MLLP connector's events go to <prefix>.events.raw (keyed by stream),
    each acknowledged to the device only after the broker acknowledged it; SIGTERM stops cleanly."""
    from hub.runtime.kafka_read import read_topics
    from hub.runtime.kafka_topics import TopicNames, ensure_topics, topic_specs

    rules_dir = rules_for_test(tmp_path)
    (rules_dir / "kafka.yaml").write_text(f"version: 1\nkafka:\n  prefix: runtest{os.getpid()}\n  partitions: 2\n")
    rules = load_rules(rules_dir)
    base = {"bootstrap.servers": kafka_bootstrap}
    ensure_topics(base, topic_specs(rules.kafka))
    proc, mllp = start_run(rules_dir, tmp_path, "--bootstrap", kafka_bootstrap)
    try:
        wait_for_line(proc, "connector(s) up")
        now = time.time()
        bed = [e for e in sample_bed(rules, t=now - 5) if e.device.id == "MON-01"]
        oru = build_oru_r01(bed, RenderContext.from_rules(rules), control_id="RUNKAFKA1", message_time=now)
        acks = asyncio.run(send(mllp, [oru]))
        assert all("MSA|AA|" in ack for ack in acks), acks
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr[-2000:]
    records = read_topics(base, [TopicNames.from_rules(rules.kafka).raw], timeout_s=20)
    assert len(records) >= len(bed) > 0
    assert all(r.key.decode().startswith("MON-01/") for r in records)
