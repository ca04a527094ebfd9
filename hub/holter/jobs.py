"""The job state machine: states, allowed transitions, per-stage progress and the queue.

    pending -> uploading -> pending (uploaded) -> [submit: queued] -> preprocessing -> ai_analyzing
            -> doctor_reviewing (only when doctor_review was requested) -> completed
    any non-final state -> cancelled;  preprocessing/ai_analyzing -> failed

Every transition is a compare-and-set UPDATE (`WHERE state IN (...)`), so the API, the
dispatcher and the workers never overwrite each other: a worker whose job was cancelled (or
handed to a restarted instance) finds its UPDATE matching no row and stops.
"""

from __future__ import annotations

import json

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.engine import Connection

from hub.holter.errors import HolterError
from hub.holter.store import tasks

STATES = ("pending", "uploading", "preprocessing", "ai_analyzing", "doctor_reviewing", "completed", "failed", "cancelled")
FINAL = frozenset({"completed", "failed", "cancelled"})
RUNNING = ("preprocessing", "ai_analyzing")
STAGES = ("uploading", "preprocessing", "ai_analyzing", "doctor_reviewing")
PRIORITY_RANK = {"normal": 1, "high": 2, "urgent": 3}
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "uploading": ("pending",),
    "pending": ("uploading", "pending"),
    "preprocessing": ("pending",),
    "ai_analyzing": ("preprocessing",),
    "doctor_reviewing": ("ai_analyzing",),
    "completed": ("ai_analyzing", "doctor_reviewing"),
    "failed": ("pending", "preprocessing", "ai_analyzing"),
    "cancelled": ("pending", "uploading", "preprocessing", "ai_analyzing", "doctor_reviewing"),
}


def get_task(conn: Connection, task_id: str, key_id: str | None = None):
    query = select(tasks).where(tasks.c.id == task_id)
    if key_id is not None:
        query = query.where(tasks.c.key_id == key_id)
    row = conn.execute(query).mappings().first()
    if row is None:
        raise HolterError("unknown_task", f"no task {task_id!r} for this API key")
    return row


def transition(conn: Connection, task_id: str, to: str, *, now: float, owner: str | None = None, **values) -> None:
    """Move `task_id` to `to` if its state allows it (and, when `owner` is given, it is still ours)."""
    allowed = TRANSITIONS[to]
    where = and_(tasks.c.id == task_id, tasks.c.state.in_(allowed))
    if owner is not None:
        where = and_(where, tasks.c.owner == owner)
    done = conn.execute(update(tasks).where(where).values(state=to, updated_at=now, **values)).rowcount
    if not done:
        row = conn.execute(select(tasks.c.state).where(tasks.c.id == task_id)).first()
        if row is None:
            raise HolterError("unknown_task", f"no task {task_id!r}")
        raise HolterError("wrong_state", f"task {task_id} is {row[0]}; moving to {to} needs one of: {', '.join(allowed)}")


def set_progress(conn: Connection, task_id: str, stage: str, percent: float, *, now: float, owner: str | None = None) -> bool:
    """Record a stage's progress; False when the task is no longer running under `owner` (stop)."""
    row = conn.execute(select(tasks.c.progress_json, tasks.c.state, tasks.c.owner).where(tasks.c.id == task_id)).first()
    if row is None or (owner is not None and (row[2] != owner or row[1] not in RUNNING)):
        return False
    progress = json.loads(row[0] or "{}")
    progress[stage] = round(float(percent), 1)
    conn.execute(update(tasks).where(tasks.c.id == task_id).values(progress_json=json.dumps(progress), updated_at=now))
    return True


def is_queued(row) -> bool:
    return row["state"] == "pending" and row["submitted_at"] is not None


def queue_position(conn: Connection, row) -> int | None:
    """1-based position among queued jobs (priority first, then submit time); None when not queued."""
    if not is_queued(row):
        return None
    ahead = conn.execute(select(func.count()).select_from(tasks).where(
        tasks.c.state == "pending", tasks.c.submitted_at.is_not(None), tasks.c.id != row["id"],
        or_(tasks.c.priority > row["priority"],
            and_(tasks.c.priority == row["priority"], tasks.c.submitted_at <= row["submitted_at"]))
    )).scalar_one()
    return int(ahead) + 1


def next_queued(conn: Connection) -> str | None:
    row = conn.execute(select(tasks.c.id).where(tasks.c.state == "pending", tasks.c.submitted_at.is_not(None))
                       .order_by(tasks.c.priority.desc(), tasks.c.submitted_at.asc()).limit(1)).first()
    return row[0] if row else None


def claim(conn: Connection, task_id: str, owner: str, *, now: float) -> bool:
    """Take a queued job for this instance (compare-and-set); False when someone else got it or it was cancelled."""
    return bool(conn.execute(update(tasks).where(tasks.c.id == task_id, tasks.c.state == "pending", tasks.c.submitted_at.is_not(None))
                             .values(state="preprocessing", owner=owner, updated_at=now)).rowcount)


def requeue_orphans(conn: Connection, *, now: float) -> int:
    """After a restart: jobs that were running (or uploads that were cut) go back to the queue; they resume
    from their checkpoint. Returns how many were requeued."""
    running = conn.execute(update(tasks).where(tasks.c.state.in_(RUNNING)).values(state="pending", owner=None, updated_at=now)).rowcount
    conn.execute(update(tasks).where(tasks.c.state == "uploading").values(state="pending", updated_at=now))
    return int(running)
