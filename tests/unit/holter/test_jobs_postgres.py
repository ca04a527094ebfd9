"""The job state machine and queue on the real PostgreSQL (127.0.0.1:5432, db test) and on SQLite."""

from __future__ import annotations

import pytest

from hub.holter import jobs
from hub.holter.errors import HolterError
from hub.holter.store import open_engine, tasks

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    url = f"sqlite:///{tmp_path / 'j.db'}" if request.param == "sqlite" else PG
    eng = open_engine(url)
    with eng.begin() as conn:
        conn.execute(tasks.delete().where(tasks.c.id.like("jobtest-%")))
    yield eng
    with eng.begin() as conn:
        conn.execute(tasks.delete().where(tasks.c.id.like("jobtest-%")))
    eng.dispose()


def add(conn, name: str, priority: int, submitted: float | None, state: str = "pending"):
    conn.execute(tasks.insert().values(id=f"jobtest-{name}", key_id="k", state=state, filename="f", file_format="mit", file_size=1,
                                       checksum="0" * 32, upload_nonce="n", upload_expires=0, uploaded=True, submitted_at=submitted,
                                       priority=priority, progress_json="{}", created_at=0, updated_at=0))


def test_queue_order_and_claim(engine):
    with engine.begin() as conn:
        add(conn, "a-normal", 1, 1.0)
        add(conn, "b-urgent", 3, 3.0)
        add(conn, "c-high", 2, 2.0)
        add(conn, "d-unsubmitted", 3, None)
        order = []
        while (tid := jobs.next_queued(conn)) is not None and tid.startswith("jobtest-"):
            assert jobs.claim(conn, tid, "me", now=5.0)
            order.append(tid)
        assert order == ["jobtest-b-urgent", "jobtest-c-high", "jobtest-a-normal"]
        assert not jobs.claim(conn, "jobtest-b-urgent", "other", now=6.0)  # already taken


def test_queue_position(engine):
    with engine.begin() as conn:
        add(conn, "x", 1, 1.0)
        add(conn, "y", 1, 2.0)
        add(conn, "z", 3, 3.0)
        pos = {n: jobs.queue_position(conn, jobs.get_task(conn, f"jobtest-{n}")) for n in "xyz"}
    base = pos["z"]
    assert pos["x"] == base + 1 and pos["y"] == base + 2


def test_transitions_are_compare_and_set(engine):
    with engine.begin() as conn:
        add(conn, "t", 1, 1.0)
        assert jobs.claim(conn, "jobtest-t", "me", now=1.0)
        with pytest.raises(HolterError) as e:
            jobs.transition(conn, "jobtest-t", "completed", now=2.0)
        assert e.value.code == "wrong_state"
        jobs.transition(conn, "jobtest-t", "ai_analyzing", now=2.0, owner="me")
        assert jobs.set_progress(conn, "jobtest-t", "ai_analyzing", 50, now=2.0, owner="me")
        jobs.transition(conn, "jobtest-t", "cancelled", now=3.0)
        assert not jobs.set_progress(conn, "jobtest-t", "ai_analyzing", 60, now=3.0, owner="me")  # the worker must stop
        with pytest.raises(HolterError):
            jobs.transition(conn, "jobtest-t", "completed", now=4.0, owner="me")
        with pytest.raises(HolterError) as e:
            jobs.get_task(conn, "jobtest-nope")
        assert e.value.code == "unknown_task"


def test_orphans_are_requeued(engine):
    with engine.begin() as conn:
        add(conn, "o", 1, 1.0, state="ai_analyzing")
        jobs.requeue_orphans(conn, now=9.0)
        row = jobs.get_task(conn, "jobtest-o")
        assert row["state"] == "pending" and row["owner"] is None and jobs.is_queued(row)
