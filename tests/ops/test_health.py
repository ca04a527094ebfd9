"""hub/health.py: the /metrics, /healthz, /readyz server and its checks, against real peers
(PostgreSQL on 127.0.0.1:5432, real sockets, a real event loop, an unreachable Kafka address)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client import REGISTRY

from edge_buffer.metrics import EdgeMetrics
from hub.errors import HubError
from hub.health import (
    Check,
    broker_check,
    connectors_check,
    database_check,
    kafka_check,
    loop_check,
    sink_checks,
    start_health_server,
    tcp_check,
)
from hub.rules.load import load_rules
from hub.rules.sinks import FhirSinkConfig, MllpSinkConfig
from tests.ops.conftest import ROOT, free_port


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=20) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def gauge(name: str, **labels) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


@pytest.fixture
def serve():
    servers = []

    def start(checks=(), **kwargs):
        server = start_health_server(-1, checks, refresh_s=0, **kwargs)
        servers.append(server)
        return server
    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def listening():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.fixture
def running_loop():
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


class FakeConnector:
    def __init__(self, name: str, status: str):
        self.name, self.status = name, status

    def health(self) -> dict:
        if self.status == "broken":
            raise RuntimeError("health() itself failed")
        return {"status": self.status}


def test_serves_metrics_liveness_and_readiness(serve, listening):
    server = serve([tcp_check("sink.hl7v2", "127.0.0.1", listening)])
    status, body = get(server.url + "/metrics")
    assert status == 200 and "devsync_events_in_total" in body
    status, body = get(server.url + "/healthz")
    assert status == 200 and json.loads(body) == {"status": "alive", "checks": []}
    status, body = get(server.url + "/readyz")
    report = json.loads(body)
    assert status == 200 and report["status"] == "ready"
    assert report["checks"][0]["name"] == "sink.hl7v2" and report["checks"][0]["ok"] is True
    assert gauge("devsync_health_check_up", check="sink.hl7v2") == 1
    assert get(server.url + "/nope")[0] == 404


def test_readiness_fails_and_names_the_unreachable_dependency(serve):
    closed = free_port()
    server = serve([tcp_check("sink.fhir", "127.0.0.1", closed, timeout_s=2),
                    Check("always", lambda: "fine")])
    status, body = get(server.url + "/readyz")
    report = json.loads(body)
    assert status == 503 and report["status"] == "not-ready"
    failing = [c for c in report["checks"] if not c["ok"]]
    assert [c["name"] for c in failing] == ["sink.fhir"]
    assert "ConnectionRefusedError" in failing[0]["detail"]
    assert gauge("devsync_health_check_up", check="sink.fhir") == 0
    assert get(server.url + "/healthz")[0] == 200  # an outage elsewhere never fails liveness


def test_a_hanging_probe_times_out(serve):
    async def hangs():
        await asyncio.sleep(30)
    server = serve([Check("slow", hangs, timeout_s=0.3)])
    status, body = get(server.url + "/readyz")
    assert status == 503 and json.loads(body)["checks"][0]["detail"] == "no answer within 0.3s"


def test_database_check_against_postgresql(serve):
    good = database_check("postgresql+psycopg://postgres@127.0.0.1:5432/test", name="db-ok")
    bad = database_check(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test", name="db-down")
    server = serve([good, bad])
    status, body = get(server.url + "/readyz")
    checks = {c["name"]: c for c in json.loads(body)["checks"]}
    assert status == 503
    assert checks["db-ok"]["ok"] is True and checks["db-ok"]["detail"] == "postgresql answers"
    assert checks["db-down"]["ok"] is False and checks["db-down"]["detail"].startswith("OperationalError")


def test_database_check_on_sqlite(tmp_path, serve):
    server = serve([database_check(f"sqlite:///{tmp_path / 'hub.db'}")])
    assert get(server.url + "/readyz")[0] == 200


def test_kafka_check_fails_when_no_broker_answers(serve):
    server = serve([kafka_check({"bootstrap.servers": f"127.0.0.1:{free_port()}"}, timeout_s=1)])
    status, body = get(server.url + "/readyz")
    assert status == 503 and json.loads(body)["checks"][0]["name"] == "broker"


def test_connector_health_sets_the_gauge_and_only_required_ones_block_readiness(serve):
    connectors = [FakeConnector("ops-mllp", "up"), FakeConnector("ops-poll", "down"),
                  FakeConnector("ops-sdc", "degraded"), FakeConnector("ops-broken", "broken")]
    server = serve([connectors_check(connectors)])
    status, body = get(server.url + "/readyz")
    assert status == 200
    assert json.loads(body)["checks"][0]["detail"] == {"ops-mllp": "up", "ops-poll": "down", "ops-sdc": "degraded",
                                                       "ops-broken": "down"}
    assert [gauge("devsync_connector_up", connector=n) for n in ("ops-mllp", "ops-poll", "ops-sdc", "ops-broken")] \
        == [1, 0, 1, 0]
    strict = serve([connectors_check(connectors, required=True)])
    assert get(strict.url + "/readyz")[0] == 503


def test_liveness_fails_when_the_event_loop_is_wedged(serve, running_loop):
    server = serve(live=[loop_check(running_loop, max_stall_s=0.5)])
    assert get(server.url + "/healthz")[0] == 200
    running_loop.call_soon_threadsafe(time.sleep, 1.5)  # the loop is stuck in a blocking call
    time.sleep(0.1)
    status, body = get(server.url + "/healthz")
    assert status == 503 and json.loads(body)["status"] == "dead"


def test_background_refresh_keeps_gauges_current():
    flips = {"ok": True}
    server = start_health_server(-1, [Check("flapping", lambda: flips["ok"])], refresh_s=0.1)
    try:
        deadline = time.monotonic() + 10
        while gauge("devsync_health_check_up", check="flapping") != 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        flips["ok"] = False
        while gauge("devsync_health_check_up", check="flapping") != 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert gauge("devsync_health_check_up", check="flapping") == 0
    finally:
        server.stop()


def test_extra_registries_and_latency_budgets(serve):
    edge = EdgeMetrics()
    edge.fill_ratio.set(0.42)
    server = serve(registries=[REGISTRY, edge.registry], rules=load_rules(ROOT / "rules"))
    body = get(server.url + "/metrics")[1]
    assert "devsync_edge_fill_ratio 0.42" in body
    assert 'devsync_latency_budget_seconds{data_class="alarm"} 0.5' in body


def test_port_zero_is_off_and_a_busy_port_is_a_clear_error(listening):
    assert start_health_server(0) is None
    with pytest.raises(HubError, match=rf"cannot listen on 127.0.0.1:{listening}"):
        start_health_server(listening)


def test_sink_checks_follow_the_configured_sinks():
    rules = load_rules(ROOT / "rules")
    assert sink_checks(rules) == []  # the default rules write files only
    sinks = rules.sinks.model_copy(update={"hl7v2": MllpSinkConfig(host="ehr.local", port=6661),
                                           "fhir": FhirSinkConfig(base_url="https://fhir.local/R4")})
    checks = sink_checks(rules.model_copy(update={"sinks": sinks}))
    assert [c.name for c in checks] == ["sink.hl7v2", "sink.fhir"]


def test_broker_check_measures_the_workers_lag(serve, kafka_bootstrap):
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    base = load_rules(ROOT / "rules")
    suffix = str(time.time_ns())
    rules = base.model_copy(update={"kafka": base.kafka.model_copy(
        update={"prefix": f"opslag{suffix}", "app_id": f"opslag-app-{suffix}"})})
    raw = f"opslag{suffix}.events.raw"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(raw, 1, 1)])[raw].result(30)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for _ in range(5):  # one record per batch (Tansu's high watermark counts batches otherwise)
        producer.produce(raw, value=b"event")
        assert producer.flush(30) == 0
    server = serve([broker_check(kafka_bootstrap, rules)])
    status, body = get(server.url + "/readyz")
    assert status == 200, body
    assert json.loads(body)["checks"][0]["detail"][f"lag.{raw}"] == 5
    assert gauge("devsync_kafka_consumer_lag_records", group=f"opslag-app-{suffix}", topic=raw) == 5


def test_a_busy_port_can_be_tolerated(listening, capsys):
    assert start_health_server(listening, required=False) is None
