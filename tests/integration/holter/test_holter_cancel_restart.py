"""Cancel mid-analysis, and kill the service (SIGKILL) mid-job: the restarted service resumes the
job from its chunk checkpoint to the same result. Small chunks (10 s) keep the job running long
enough to act on it while it is in ai_analyzing. This service keeps its state in the real
PostgreSQL (its own database, created here), the other integration tests use the SQLite default."""

from __future__ import annotations

import os
import time

import psycopg
import pytest

from tests.integration.holter.holter_service import API, Client, HolterServer, mit_zip

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_DB = f"devsync_holter_test_{os.getpid()}"


@pytest.fixture(scope="module")
def holter_database():
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{PG_DB}"')
        conn.execute(f'CREATE DATABASE "{PG_DB}"')
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{PG_DB}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory, holter_database):
    server = HolterServer(tmp_path_factory.mktemp("holter-slow"), {"workers": 1, "chunk_s": 10, "database_url": holter_database})
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def slow_client(slow_server) -> Client:
    return Client(slow_server.url, slow_server.add_key("slow"))


def test_priority_orders_the_queue(slow_client):
    blocker = slow_client.upload("100.zip", mit_zip(with_atr=False), "mit")
    normal = slow_client.upload("100.zip", mit_zip(with_atr=False), "mit")
    urgent = slow_client.upload("100.zip", mit_zip(with_atr=False), "mit")
    assert slow_client.submit(blocker, sampling_rate=360).status_code == 202
    slow_client.wait_for(blocker, {"ai_analyzing"})
    assert slow_client.submit(normal, sampling_rate=360, priority="normal").json()["queue_position"] == 1
    assert slow_client.submit(urgent, sampling_rate=360, priority="urgent").json()["queue_position"] == 1  # jumps the queue
    assert slow_client.status(normal)["queue_position"] == 2
    for t in (blocker, urgent, normal):
        assert slow_client.http.post(f"{API}/cancel/{t}").json()["status"] == "cancelled"


def test_cancel_mid_analysis_then_restart_mid_job_resumes(slow_server, slow_client):
    # 1. cancel a job while it is in ai_analyzing
    cancelled = slow_client.upload("100.zip", mit_zip(with_atr=False), "mit")
    assert slow_client.submit(cancelled, sampling_rate=360).status_code == 202
    running = slow_client.wait_for(cancelled, {"ai_analyzing"}, min_progress=5)
    assert running["progress"]["ai_analyzing"] < 90
    r = slow_client.http.post(f"{API}/cancel/{cancelled}")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    # 2. the only worker lets go of the cancelled job at its next chunk and takes the next one
    task = slow_client.upload("100.zip", mit_zip(with_atr=False), "mit")
    assert slow_client.submit(task, sampling_rate=360).status_code == 202
    before = slow_client.wait_for(task, {"ai_analyzing"}, min_progress=20)
    # 3. kill the service (SIGKILL) mid-job and start it again on the same data folder
    workers = _worker_pids(slow_server.proc.pid)
    assert workers, "the job should be running in a worker process of the service"
    slow_server.kill()
    workers_left = _still_running(workers)
    slow_server.start()
    done = slow_client.wait_for(task, {"completed"})
    assert done["progress"]["ai_analyzing"] == 100
    res = slow_client.http.get(f"{API}/result/{task}").json()
    assert res["heart_rate"]["total_beats"] == 2273  # same beats as an uninterrupted run
    resumed = [n for n in res["summary"]["notes"] if n.startswith("resumed from checkpoint after chunk")]
    assert resumed, res["summary"]["notes"]
    assert int(resumed[0].split("chunk ")[1].split(" of")[0]) >= int(before["progress"]["ai_analyzing"] / 90 * 181) - 1
    assert workers_left == []  # no orphaned worker of the killed service kept running
    # 4. the cancelled job stayed cancelled, without a result
    st = slow_client.status(cancelled)
    assert st["status"] == "cancelled" and st["progress"]["ai_analyzing"] < 90
    assert slow_client.http.get(f"{API}/result/{cancelled}").json()["code"] == "wrong_state"


def _parent_of(pid: str) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _worker_pids(server_pid: int) -> list[int]:
    """Pool workers of the service (spawned processes), not its resource tracker."""
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit() and _parent_of(p) == server_pid:
            try:
                with open(f"/proc/{p}/cmdline", "rb") as f:
                    cmdline = f.read()
            except OSError:
                continue
            if b"spawn_main" in cmdline:
                out.append(int(p))
    return out


def _still_running(pids: list[int], limit_s: float = 15.0) -> list[int]:
    """Pids that are still alive (not gone, not zombies) after waiting up to `limit_s`."""
    deadline = time.monotonic() + limit_s
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if _alive(p)]
        time.sleep(0.05)
    return alive


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
