"""The edge gateway: connectors -> buffer (group commit) -> forwarder -> upstream, plus /healthz.

    gateway = Gateway(rules, "buffer.db", MqttUpstream("hub", 1883, rules.edge), connectors)
    await gateway.start(); ...; await gateway.stop()

`emit` (what the connectors call) returns only after the event's INSERT is committed, so a
connector acknowledges its device only for events that are on disk. Concurrent emits share
one commit: events arriving while a commit runs go into the next one (group commit).
Every SQLite call runs on one store thread, so neither fsync nor a large replay query
stalls the event loop.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from connectors.base import Connector
from edge_buffer.errors import QueueFullError
from edge_buffer.forwarder import Forwarder
from edge_buffer.health import HealthServer
from edge_buffer.metrics import EdgeMetrics
from edge_buffer.queue import EdgeQueue, encode_event
from edge_buffer.upstream import Upstream
from hub.events import Event
from hub.logs import get_logger
from hub.rules.connectors import ConnectorRules
from hub.rules.models import RuleSet

log = get_logger("edge.gateway")


def gateway_rules(rules: RuleSet) -> RuleSet:
    """The rules narrowed to the devices behind this gateway (devices[].gateway == edge.gateway_id)
    and the connector listeners those devices use."""
    gateway_id = rules.edge.gateway_id
    devices = [d for d in rules.devices if d.gateway == gateway_id]
    protocols = {t.protocol.value for d in devices if (t := rules.device_type(d.type)) is not None}
    sections = {"hl7v2-mllp": "mllp", "http": "http", "mqtt": "mqtt"}
    kept = {s: getattr(rules.connectors, s) for p, s in sections.items() if p in protocols}
    return rules.model_copy(update={"devices": devices, "connectors": ConnectorRules.model_construct(
        mllp=kept.get("mllp"), http=kept.get("http"), mqtt=kept.get("mqtt"))})


def build_gateway_connectors(rules: RuleSet) -> list[Connector]:
    """The connectors for this gateway's devices, built by the connector registry."""
    from connectors.registry import build_connectors

    narrowed = gateway_rules(rules)
    if not narrowed.devices:
        return []
    return build_connectors(narrowed)


class Gateway:
    def __init__(self, rules: RuleSet, buffer_path: str | Path, upstream: Upstream, connectors: list[Connector],
                 *, metrics: EdgeMetrics | None = None, health_port: int | None = None,
                 clock: Callable[[], float] = time.time):
        self.rules = rules
        self.settings = rules.edge
        self.buffer_path = Path(buffer_path)
        self.upstream = upstream
        self.connectors = connectors
        self.metrics = metrics or EdgeMetrics()
        self.clock = clock
        self.health_port = self.settings.health_port if health_port is None else health_port
        self.queue: EdgeQueue | None = None
        self.forwarder: Forwarder | None = None
        self.health_server: HealthServer | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edge-store")
        self._pending: list[tuple[tuple, asyncio.Future]] = []
        self._has_pending = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._running = False
        self._refusing = False
        self._append_failing = False  # the last commit failed (disk full, I/O error): refusing until one succeeds
        self._crashed: str | None = None  # a gateway task died: /healthz is down, the orchestrator restarts us

    # ---------- store thread ----------
    async def store(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # ---------- lifecycle ----------
    async def start(self) -> None:
        self.queue = await self.store(EdgeQueue, self.buffer_path, self.settings, self.metrics)
        recovered = await self.store(self.queue.max_row_id)  # before any connector emits: the first backlog
        self.forwarder = Forwarder(self.queue, self.store, self.upstream, self.settings, self.metrics, clock=self.clock,
                                   backlog_mark=recovered)
        self._running = True
        self._tasks = [
            asyncio.create_task(self._write_loop(), name="edge-writer"),
            asyncio.create_task(self.forwarder.run(), name="edge-forwarder"),
            asyncio.create_task(self._housekeeping(), name="edge-housekeeping"),
        ]
        for task in self._tasks:
            task.add_done_callback(self._task_done)
        if self.health_port:
            self.health_server = HealthServer(self.settings.health_host, self.health_port, self.health,
                                              self.metrics.render)
            self.health_port = await self.health_server.start()
        for connector in self.connectors:
            await connector.start(self.emit)
        log.info("gateway started", gateway=self.settings.gateway_id, buffer=str(self.buffer_path),
                 upstream=self.upstream.target, connectors=len(self.connectors), pending=self.queue.rows)

    def _task_done(self, task: asyncio.Task) -> None:
        if task.cancelled() or task.exception() is None:
            return
        self._crashed = f"{task.get_name()}: {task.exception()!r}"
        log.error("gateway task died; health is down until restart", task=task.get_name(),
                  error=repr(task.exception()))

    async def stop(self) -> None:
        for connector in self.connectors:
            try:
                await connector.stop()
            except Exception as exc:  # noqa: BLE001 - one connector must not keep the buffer from closing
                log.error("connector stop failed", connector=getattr(connector, "name", "?"), error=repr(exc))
        self._running = False
        self._has_pending.set()
        if self.forwarder:
            await self.forwarder.stop()
        for task in self._tasks:
            try:
                await asyncio.wait_for(task, timeout=self.settings.ack_timeout_s + 10)
            except TimeoutError:
                task.cancel()
            except Exception:  # noqa: BLE001, S110 - already logged by _task_done
                pass
        await self.upstream.close()
        if self.health_server:
            await self.health_server.stop()
        if self.queue:
            await self.store(self.queue.close)
        self._executor.shutdown(wait=True)
        log.info("gateway stopped", gateway=self.settings.gateway_id)

    # ---------- emit: what connectors call ----------
    async def emit(self, event: Event) -> None:
        """Returns once the event is committed to the buffer; raises QueueFullError when refused."""
        if not self._running:
            raise QueueFullError("edge gateway is stopping; retry later", retry_after=1.0)
        if event.provenance.gateway is None:
            event = event.with_changes(provenance=event.provenance.model_copy(
                update={"gateway": self.settings.gateway_id}))
        future = asyncio.get_running_loop().create_future()
        self._pending.append((encode_event(event), future))
        self._has_pending.set()
        await future

    async def _write_loop(self) -> None:
        """Group commit: take what is pending (up to the batch size), commit it, resolve the futures."""
        s = self.settings
        while self._running or self._pending:
            if not self._pending:
                self._has_pending.clear()
                await self._has_pending.wait()
                continue
            if s.append_batch_max_wait_s and len(self._pending) < s.append_batch_max_events:
                await asyncio.sleep(s.append_batch_max_wait_s)
            batch = self._pending[: s.append_batch_max_events]
            del self._pending[: len(batch)]
            try:
                result = await self.store(self.queue.append_encoded, [row for row, _ in batch])
            except Exception as exc:  # noqa: BLE001 - disk full, I/O error: nobody is acknowledged
                log.error("buffer append failed", error=repr(exc), events=len(batch))
                self._append_failing = True
                self.metrics.refused.labels(append_failure_reason(exc)).inc(len(batch))
                for _, future in batch:
                    if not future.done():
                        future.set_exception(QueueFullError(f"{self.buffer_path}: append failed ({exc})"))
                continue
            self._append_failing = False
            self._refusing = result.refused > 0
            for i, (_, future) in enumerate(batch):
                if future.done():
                    continue
                if i < result.accepted:
                    future.set_result(None)
                else:
                    future.set_exception(QueueFullError(
                        f"{self.buffer_path}: buffer full of unsheddable events ({result.refuse_reason}); "
                        "retry when the upstream drains it"))
            if result.accepted:
                self.forwarder.poke()

    async def _housekeeping(self) -> None:
        """Refresh age/size gauges every second; compact every compact_interval_s."""
        last_compact = time.monotonic()
        while self._running:
            await asyncio.sleep(1.0)
            try:
                await self.store(self.queue.stats, self.clock())
                if time.monotonic() - last_compact >= self.settings.compact_interval_s:
                    last_compact = time.monotonic()
                    await self.store(self.queue.compact)
            except sqlite3.Error as exc:  # disk full / I/O error: the buffer is still usable, try again later
                log.error("buffer housekeeping failed; retrying at the next interval", error=repr(exc))

    # ---------- health ----------
    def health(self) -> dict:
        q, f = self.queue, self.forwarder
        depth = q.rows if q else 0
        # refusing until the fill drops below the first warning level (that clears the shedding alert)
        self._refusing = self._refusing and self.metrics.value("devsync_edge_shedding_alert") == 1
        refusing = self._refusing or self._append_failing
        if q is None or not self._running or refusing or self._crashed:
            status = "down"  # cannot take new events, or cannot forward them any more
        elif f is None or not f.connected:
            status = "degraded"  # buffering, upstream unreachable
        else:
            status = "up"
        return {
            "status": status,
            "gateway": self.settings.gateway_id,
            "error": self._crashed,
            "upstream": {"target": self.upstream.target, "connected": bool(f and f.connected),
                         "last_error": f.last_error if f else None},
            "buffer": {"depth": depth, "bytes": q.bytes if q else 0, "fill_ratio": round(q.fill_ratio(), 6) if q else 0,
                       "oldest_age_s": self.metrics.value("devsync_edge_queue_oldest_age_seconds"),
                       "refusing": refusing},
            "connectors": [_connector_health(c) for c in self.connectors],
        }


def append_failure_reason(exc: Exception) -> str:
    """Label of devsync_edge_refused_total for a failed commit: 'disk-full' (SQLITE_FULL) or 'io-error'."""
    return "disk-full" if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL else "io-error"


def _connector_health(connector: Connector) -> dict:
    try:
        return {"name": getattr(connector, "name", type(connector).__name__), **connector.health()}
    except Exception as exc:  # noqa: BLE001 - a broken health() must not break /healthz
        return {"name": getattr(connector, "name", "?"), "status": "unknown", "error": repr(exc)}


async def serve_gateway(gateway: Gateway, stop: asyncio.Event) -> None:
    """Run until `stop` is set (SIGTERM / SIGINT in the CLI), then stop cleanly."""
    await gateway.start()
    try:
        await stop.wait()
    finally:
        await gateway.stop()
