"""Jobs off the API process: a bounded pool of worker processes fed by a dispatcher thread.

1. The dispatcher (a thread in the service process) requeues jobs a previous instance left
   running (`jobs.requeue_orphans`), then loops: reap finished futures, and while fewer than
   `workers` jobs run, claim the next queued job (urgent > high > normal, then oldest) with a
   compare-and-set and hand it to the ProcessPoolExecutor (spawned processes).
2. A worker process (`run_task`) opens its own database engine, re-opens the upload (format,
   truncation and rate checks), moves to ai_analyzing, runs the chunked analysis, and after each
   chunk records progress. That write only succeeds while the job is still running under this
   instance's `owner` id: a cancel (state -> cancelled) or a restart (owner changed) stops the
   worker at the next chunk. The chunk checkpoint lets the next run resume where this one stopped.
3. Finishing is one transaction: result + state (doctor_reviewing or completed / failed) + the
   webhook row. A separate thread delivers due webhooks (hub.holter.webhooks).
Workers die with the service (Linux PR_SET_PDEATHSIG), so a killed service leaves no orphan
writing to the job; the restarted service resumes it.
"""

from __future__ import annotations

import ctypes
import json
import multiprocessing
import signal
import threading
import time
import traceback
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import httpx
from sqlalchemy import update
from sqlalchemy.engine import Engine

from hub.holter import jobs, webhooks
from hub.holter.errors import HolterError, JobCancelled
from hub.holter.metrics import JOBS
from hub.holter.settings import HolterSettings
from hub.holter.store import database_url, open_engine, tasks
from hub.logs import get_logger

log = get_logger("holter.worker")


def task_dir(s: HolterSettings, task_id: str) -> Path:
    return Path(s.data_dir) / "tasks" / task_id


def _die_with_parent() -> None:
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: workers rely on the owner check instead
        pass


def warm_up() -> None:
    """Import the analysis stack in a fresh worker process before the first job needs it."""
    import hub.holter.result  # noqa: F401


def run_task(task_id: str, settings_json: str, owner: str) -> str:
    """Worker-process entry point. Returns the final state it left the job in."""
    from hub.holter.result import finish_analysis  # heavy imports stay in the worker

    s = HolterSettings.model_validate_json(settings_json)
    engine = open_engine(database_url(s.data_dir, s.database_url))
    try:
        return finish_analysis(engine, s, task_id, owner)
    except JobCancelled:
        return "stopped"
    except HolterError as exc:
        return fail_task(engine, task_id, owner, exc.code, exc.message)
    except Exception as exc:  # noqa: BLE001 - a bug or an unreadable file the readers did not foresee: fail the job, keep the pool
        log.error("job crashed", task=task_id, error=type(exc).__name__, detail=traceback.format_exc(limit=3))
        return fail_task(engine, task_id, owner, "analysis_error", f"{type(exc).__name__}: {exc}")
    finally:
        engine.dispose()


def fail_task(engine: Engine, task_id: str, owner: str, code: str, message: str) -> str:
    now = time.time()
    with engine.begin() as conn:
        try:
            jobs.transition(conn, task_id, "failed", now=now, owner=owner, error_code=code, error_message=message)
        except HolterError:
            return "stopped"  # cancelled or taken over meanwhile
        row = jobs.get_task(conn, task_id)
        request = json.loads(row["request_json"] or "{}")
        if request.get("callback_url"):
            webhooks.enqueue_webhook(conn, task_id=task_id, key_id=row["key_id"], url=request["callback_url"], event="analysis.failed",
                                     payload={"event": "analysis.failed", "task_id": task_id, "status": "failed",
                                              "error": {"code": code, "message": message}, "timestamp": now}, now=now)
    log.info("job failed", task=task_id, code=code)
    return "failed"


class Dispatcher:
    """Feeds queued jobs to a process pool (bounded), delivers webhooks; one per service instance."""

    def __init__(self, engine: Engine, s: HolterSettings, owner: str):
        self.engine, self.s, self.owner = engine, s, owner
        self.running: dict[str, Future] = {}
        self._stop = threading.Event()
        self._pool: ProcessPoolExecutor | None = None
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        with self.engine.begin() as conn:
            resumed = jobs.requeue_orphans(conn, now=time.time())
        if resumed:
            log.info("requeued jobs left running by a previous instance", count=resumed)
        self._threads = [threading.Thread(target=self._dispatch_loop, name="holter-dispatch", daemon=True),
                         threading.Thread(target=self._webhook_loop, name="holter-webhooks", daemon=True)]
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=5)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=self.s.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_die_with_parent)

    def _dispatch_loop(self) -> None:
        # The pool is created and fed from this thread only: PR_SET_PDEATHSIG follows the creating thread.
        self._pool = self._new_pool()
        for _ in range(self.s.workers):
            self._pool.submit(warm_up)
        settings_json = self.s.model_dump_json()
        while not self._stop.is_set():
            try:
                self._reap()
                self._fill(settings_json)
            except Exception as exc:  # noqa: BLE001 - database briefly unavailable: keep dispatching
                log.error("dispatch error", error=f"{type(exc).__name__}: {exc}")
            self._stop.wait(self.s.dispatch_interval_s)

    def _reap(self) -> None:
        for task_id, fut in list(self.running.items()):
            if not fut.done():
                continue
            del self.running[task_id]
            exc = fut.exception()
            if isinstance(exc, BrokenProcessPool):
                log.error("worker process died; requeueing its job", task=task_id)
                with self.engine.begin() as conn:
                    conn.execute(update(tasks).where(tasks.c.id == task_id, tasks.c.owner == self.owner, tasks.c.state.in_(jobs.RUNNING))
                                 .values(state="pending", owner=None, updated_at=time.time()))
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = self._new_pool()
            elif exc is not None:
                log.error("job raised in worker", task=task_id, error=repr(exc))
            else:
                JOBS.labels(state=fut.result()).inc()
                log.info("job finished", task=task_id, state=fut.result())

    def _fill(self, settings_json: str) -> None:
        while len(self.running) < self.s.workers and not self._stop.is_set():
            with self.engine.begin() as conn:
                task_id = jobs.next_queued(conn)
                if task_id is None or not jobs.claim(conn, task_id, self.owner, now=time.time()):
                    return
            log.info("job started", task=task_id)
            self.running[task_id] = self._pool.submit(run_task, task_id, settings_json, self.owner)

    def _webhook_loop(self) -> None:
        with httpx.Client(trust_env=False) as client:
            while not self._stop.is_set():
                try:
                    webhooks.deliver_due(self.engine, self.s, client=client)
                except Exception as exc:  # noqa: BLE001 - the delivery loop never dies; due rows are retried
                    log.error("webhook loop error", error=f"{type(exc).__name__}: {exc}")
                self._stop.wait(0.5)
