"""Crash: kill -9 the gateway process during a write burst, restart it; every event it acknowledged
to its connector is delivered to Kafka (by event id) and the buffer passes PRAGMA integrity_check."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from edge_support import KafkaSink, check_order, first_occurrences, free_port

RUNNER = Path(__file__).with_name("edge_runner.py")


def start_runner(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(RUNNER), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def acked_ids(ack_log: Path) -> list[str]:
    lines = ack_log.read_text().splitlines() if ack_log.exists() else []
    return [ln.split()[0] for ln in lines if len(ln.split()) == 3]  # a torn last line is ignored


@pytest.mark.integration
@pytest.mark.faults
@pytest.mark.timeout(120)
def test_kill_9_during_a_write_burst_loses_no_acknowledged_event(tmp_path, kafka_bootstrap):
    buffer, ack_log = tmp_path / "buffer.db", tmp_path / "acked.log"
    prefix = f"crash{free_port()}."
    common = ["--buffer", str(buffer), "--bootstrap", kafka_bootstrap, "--topic-prefix", prefix]

    burst = start_runner(*common, "--burst", "48", "--ack-log", str(ack_log))
    try:
        deadline = time.monotonic() + 60
        while len(acked_ids(ack_log)) < 5_000 and time.monotonic() < deadline and burst.poll() is None:
            time.sleep(0.05)
        assert burst.poll() is None, burst.stderr.read().decode()[-2000:]
        os.kill(burst.pid, signal.SIGKILL)  # mid-burst: appends and forwarding both in flight
        burst.wait(10)
    finally:
        if burst.poll() is None:
            burst.kill()
    acked = acked_ids(ack_log)
    assert len(acked) >= 5_000 and len(set(acked)) == len(acked)

    db = sqlite3.connect(buffer)  # opening replays the WAL, like the restarted gateway will
    assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    pending_after_crash = db.execute("SELECT count(*) FROM events").fetchone()[0]
    db.close()

    restart = start_runner(*common, "--until-drained")
    try:
        assert restart.wait(60) == 0, restart.stderr.read().decode()[-2000:]
    finally:
        if restart.poll() is None:
            restart.kill()
    db = sqlite3.connect(buffer)
    assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert db.execute("SELECT count(*) FROM events").fetchone()[0] == 0
    db.close()

    sink = KafkaSink(kafka_bootstrap, f"{prefix}events.raw", 3)
    try:
        wanted = set(acked)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            sink.poll(0.5)
            delivered = {e["event_id"] for e in first_occurrences(sink.payloads)[0]}
            if wanted <= delivered:
                break
        events, duplicates = first_occurrences(sink.payloads)
        delivered = {e["event_id"] for e in events}
        assert not wanted - delivered, f"{len(wanted - delivered)} acknowledged events lost (of {len(wanted)})"
        check_order(events)
        # committed-but-unacknowledged events (killed between COMMIT and the ack) are delivered too
        assert len(delivered) >= len(wanted)
        print(f"acked={len(wanted)} pending_after_crash={pending_after_crash} delivered={len(delivered)} "
              f"duplicates={duplicates}")
    finally:
        sink.close()
