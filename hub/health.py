"""One small HTTP server per long-running process: /metrics, /healthz (liveness), /readyz (readiness).

    server = start_health_server(9464, [database_check(url), *sink_checks(rules), kafka_check(conf)],
                                 rules=rules)
    ...
    server.stop()

It runs in its own daemon thread with its own event loop, so it works the same for asyncio
commands (`devsync run`, `demo`, `edge`), for faust's blocking worker and for uvicorn, and it
keeps answering while the main loop is busy. Routes (GET only):

  /metrics  Prometheus text of the given registries (default: the process-wide REGISTRY).
  /healthz  liveness: 200 unless a `live` check fails (e.g. `loop_check`: the main event loop
            stopped turning). No dependency is probed here, so an outage of Kafka or the EHR
            never makes Kubernetes restart a healthy pod.
  /readyz   readiness: runs every `checks` entry now, concurrently, each with its own timeout;
            200 when all pass, 503 with the failing ones named otherwise.

Checks are `Check(name, probe, timeout_s)`: `probe` is a sync or async callable that returns a
detail (str/dict/None) or raises; returning False also fails. Sync probes run in a worker
thread. Every run sets `devsync_health_check_up{check}`; `refresh_s` re-runs the readiness
checks in the background so that gauge, `devsync_connector_up` and
`devsync_kafka_consumer_lag_records` stay current between probes. Responses never carry
secrets or patient data: a failing check reports the exception type and a short message.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from hub import metrics
from hub.errors import HubError
from hub.logs import get_logger

log = get_logger("health")

HOST_ENV = "DEVSYNC_HEALTH_HOST"  # bind address; containers set 0.0.0.0 (default 127.0.0.1)
DETAIL_CHARS = 200


@dataclass(frozen=True)
class Check:
    name: str
    probe: Callable[[], Any | Awaitable[Any]]
    timeout_s: float = 3.0


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: Any
    seconds: float

    def as_dict(self) -> dict:
        return {"name": self.name, "ok": self.ok, "detail": self.detail, "seconds": round(self.seconds, 4)}


async def run_check(check: Check) -> CheckResult:
    started = time.monotonic()
    try:
        if asyncio.iscoroutinefunction(check.probe):
            outcome = await asyncio.wait_for(check.probe(), check.timeout_s)
        else:
            outcome = await asyncio.wait_for(asyncio.to_thread(check.probe), check.timeout_s)
        ok, detail = outcome is not False, (None if outcome in (None, False, True) else outcome)
    except TimeoutError:
        ok, detail = False, f"no answer within {check.timeout_s:g}s"
    except Exception as exc:  # noqa: BLE001 - a failing probe is a result, not a crash
        ok, detail = False, f"{type(exc).__name__}: {str(exc)[:DETAIL_CHARS]}"
    metrics.HEALTH_CHECK_UP.labels(check.name).set(1 if ok else 0)
    return CheckResult(check.name, ok, detail, time.monotonic() - started)


async def run_checks(checks: Sequence[Check]) -> list[CheckResult]:
    return list(await asyncio.gather(*(run_check(c) for c in checks)))


class HealthServer:
    """The running server (returned by `start_health_server`): `.port`, `.url`, `.stop()`."""

    def __init__(self, host: str, port: int, checks: Sequence[Check], live: Sequence[Check],
                 registries: Sequence[CollectorRegistry], refresh_s: float):
        self.host, self.port = host, port
        self.checks, self.live = list(checks), list(live)
        self.registries = list(registries)
        self.refresh_s = refresh_s
        self.last_ready: list[CheckResult] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> HealthServer:
        bound: dict = {}
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(bound, ready), name="devsync-health", daemon=True)
        self._thread.start()
        if not ready.wait(30):
            raise HubError(f"health server: {self.host}:{self.port} did not start within 30s")
        if "error" in bound:
            raise HubError(f"health server: cannot listen on {self.host}:{self.port}: {bound['error']} "
                           "(choose a free port, or 0 to turn it off)")
        self.port = bound["port"]
        log.info("health server listening", host=self.host, port=self.port, checks=len(self.checks))
        return self

    def stop(self) -> None:
        if self._loop is None or self._stopped.is_set():
            return
        self._stopped.set()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _serve(self, bound: dict, ready: threading.Event) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        runner = web.AppRunner(self._app(), access_log=None, handle_signals=False)
        try:
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
            loop.run_until_complete(site.start())
            bound["port"] = runner.addresses[0][1]
        except OSError as exc:
            bound["error"] = exc.strerror or str(exc)
            ready.set()
            loop.run_until_complete(runner.cleanup())
            loop.close()
            return
        ready.set()
        refresher = loop.create_task(self._refresh()) if self.refresh_s > 0 and self.checks else None
        try:
            loop.run_forever()
        finally:
            if refresher:
                refresher.cancel()
            loop.run_until_complete(runner.cleanup())
            loop.close()

    async def _refresh(self) -> None:
        while True:
            self.last_ready = await run_checks(self.checks)
            await asyncio.sleep(self.refresh_s)

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        return app

    async def _metrics(self, request: web.Request) -> web.Response:
        body = b"".join(generate_latest(r) for r in self.registries)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, request: web.Request) -> web.Response:
        results = await run_checks(self.live)
        return _report("alive", "dead", results)

    async def _readyz(self, request: web.Request) -> web.Response:
        self.last_ready = await run_checks(self.checks)
        return _report("ready", "not-ready", self.last_ready)


def _report(good: str, bad: str, results: list[CheckResult]) -> web.Response:
    ok = all(r.ok for r in results)
    body = {"status": good if ok else bad, "checks": [r.as_dict() for r in results]}
    return web.Response(status=200 if ok else 503, body=orjson.dumps(body, default=str) + b"\n",
                        content_type="application/json")


def start_health_server(port: int, checks: Iterable[Check] = (), *, live: Iterable[Check] = (),
                        host: str | None = None, registries: Sequence[CollectorRegistry] | None = None,
                        rules=None, refresh_s: float = 15.0, required: bool = True) -> HealthServer | None:
    """Serve /metrics, /healthz and /readyz on `port` in a background thread; returns the server.

    port:       TCP port (0 = off: returns None; use `port=-1` in tests for a free port).
    checks:     readiness checks (`database_check`, `broker_check`/`kafka_check`, `sink_checks(rules)`,
                `tcp_check`, `connectors_check`, or any `Check`); /readyz is 503 while one fails.
    live:       liveness checks (usually `loop_check(asyncio.get_running_loop())` or none).
    host:       bind address; default $DEVSYNC_HEALTH_HOST, else 127.0.0.1 (the image sets 0.0.0.0).
    registries: what /metrics serves (default the process-wide prometheus_client REGISTRY; the edge
                gateway adds its own `gateway.metrics.registry`).
    rules:      a RuleSet: publishes each data class's latency budget as devsync_latency_budget_seconds.
    refresh_s:  re-run readiness checks this often in the background (0 = only on /readyz).
    required:   True: raise HubError when the port cannot be bound; False: log a warning and return
                None (several processes on one machine, e.g. tests or a laptop, must not crash on it).
    """
    if port == 0:
        return None
    if rules is not None:
        publish_latency_budgets(rules)
    server = HealthServer(host or os.environ.get(HOST_ENV) or "127.0.0.1", max(port, 0), list(checks), list(live),
                          list(registries or [REGISTRY]), refresh_s)
    try:
        return server.start()
    except HubError as exc:
        if required:
            raise
        log.warning("health server is off for this process", reason=str(exc))
        return None


def publish_latency_budgets(rules) -> None:
    for data_class, profile in rules.sync_profiles.items():
        metrics.LATENCY_BUDGET.labels(str(data_class.value if hasattr(data_class, "value") else data_class)).set(
            profile.latency_budget_s)


# ---------------------------------------------------------------- check factories
def tcp_check(name: str, host: str, port: int, timeout_s: float = 3.0) -> Check:
    """Ready when a TCP connection to host:port opens (MLLP receivers, PACS, brokers)."""
    async def probe() -> str:
        _, writer = await asyncio.open_connection(host, port)
        writer.close()
        return f"{host}:{port} accepts connections"
    return Check(name, probe, timeout_s)


def database_check(url: str, name: str = "database", timeout_s: float = 3.0) -> Check:
    """Ready when `SELECT 1` answers on the SQLAlchemy URL (SQLite file or PostgreSQL)."""
    state: dict = {}

    def probe() -> str:
        from sqlalchemy import create_engine, text
        from sqlalchemy.pool import NullPool

        engine = state.get("engine")
        if engine is None:
            connect_args = {"connect_timeout": int(max(timeout_s, 1))} if url.startswith("postgresql") else {}
            engine = state["engine"] = create_engine(url, poolclass=NullPool, connect_args=connect_args)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return f"{engine.dialect.name} answers"
    return Check(name, probe, timeout_s)


def sink_checks(rules, timeout_s: float = 3.0) -> list[Check]:
    """One TCP reachability check per configured network sink (sinks.hl7v2, pcd04, fhir, dicom)."""
    found: list[Check] = []
    sinks = rules.sinks
    for name in ("hl7v2", "pcd04", "fhir", "dicom"):
        config = getattr(sinks, name, None)
        if config is None:
            continue
        if getattr(config, "base_url", None):
            parts = urlsplit(config.base_url)
            host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
        else:
            host, port = getattr(config, "host", None), getattr(config, "port", None)
        if host and port:
            found.append(tcp_check(f"sink.{name}", host, port, timeout_s))
    return found


def kafka_check(config: dict, group: str | None = None, topics: Sequence[str] = (), name: str = "broker",
                timeout_s: float = 5.0) -> Check:
    """Ready when the brokers answer a metadata request. With `group` and `topics` it also measures
    the group's lag per topic (high watermark - committed offset, summed over partitions) into
    devsync_kafka_consumer_lag_records; partitions without a commit count from the low watermark.
    `config` is the librdkafka client config (hub.runtime.kafka_settings.confluent_config)."""
    state: dict = {}

    def probe() -> dict:
        from confluent_kafka import Consumer, TopicPartition

        consumer = state.get("consumer")
        if consumer is None:
            consumer = state["consumer"] = Consumer({**config, "group.id": group or "devsync-health",
                                                     "enable.auto.commit": False})
        meta = consumer.list_topics(timeout=timeout_s)
        detail: dict = {"brokers": len(meta.brokers)}
        if group:
            for topic in topics:
                if topic not in meta.topics:
                    continue
                parts = [TopicPartition(topic, p) for p in meta.topics[topic].partitions]
                committed = consumer.committed(parts, timeout=timeout_s)
                lag = 0
                for tp in committed:
                    low, high = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=timeout_s)
                    lag += max(high - (tp.offset if tp.offset >= 0 else low), 0)
                metrics.KAFKA_CONSUMER_LAG.labels(group, topic).set(lag)
                detail[f"lag.{topic}"] = lag
        return detail
    return Check(name, probe, timeout_s * 3)


def broker_check(bootstrap: str, rules, *, measure_lag: bool = True, timeout_s: float = 5.0) -> Check:
    """`kafka_check` for the hub's own cluster: connection security from the DEVSYNC_KAFKA_* environment
    (as `devsync worker` reads it) and the lag of the workers' group (kafka.app_id) on the stage inputs."""
    from hub.commands.kafka import ENV_FIELDS
    from hub.runtime.kafka_settings import KafkaSettings, confluent_config
    from hub.runtime.kafka_topics import TopicNames

    env = {f: os.environ[f"DEVSYNC_KAFKA_{f.upper()}"] for f in ENV_FIELDS if os.environ.get(f"DEVSYNC_KAFKA_{f.upper()}")}
    config = confluent_config(KafkaSettings(bootstrap=bootstrap, **env), rules.kafka)
    names = TopicNames.from_rules(rules.kafka)
    return kafka_check(config, group=rules.kafka.app_id if measure_lag else None,
                       topics=[names.raw, names.normalized, names.alarms_raw, names.alarms_normalized],
                       timeout_s=timeout_s)


def connectors_check(connectors: Sequence, required: bool = False, name: str = "connectors") -> Check:
    """Reads every connector's health() into devsync_connector_up{connector}. With required=True the
    process is not ready while one is down (a listener that must take traffic); by default a down
    device connector is reported (metric, alert ConnectorDown) but keeps the pod in service."""
    def probe() -> dict | bool:
        states = {}
        for connector in connectors:
            try:
                status = connector.health().get("status", "down")
            except Exception:  # noqa: BLE001 - a broken health() reads as down
                status = "down"
            states[connector.name] = status
            metrics.CONNECTOR_UP.labels(connector.name).set(0 if status == "down" else 1)
        return False if required and "down" in states.values() else states
    return Check(name, probe)


def loop_check(loop: asyncio.AbstractEventLoop, max_stall_s: float = 10.0, name: str = "event-loop") -> Check:
    """Liveness: alive while `loop` runs a callback within max_stall_s (a wedged loop fails)."""
    def probe() -> str:
        turned = threading.Event()
        loop.call_soon_threadsafe(turned.set)
        if not turned.wait(max_stall_s):
            raise HubError(f"event loop did not run a callback within {max_stall_s:g}s")
        return "turning"
    return Check(name, probe, max_stall_s + 1)
