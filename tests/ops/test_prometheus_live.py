"""A real Prometheus scrapes a running hub during a demo run and two edge gateways; every PromQL
expression of the dashboards and alert rules is evaluated through Prometheus's HTTP API.

Scrape targets (all on loopback, free ports):
  devsync-hub   tests/ops/hub_harness.py: `devsync demo` + start_health_server (/metrics, /healthz,
                /readyz) + real MLLP/HTTP/MQTT listener connectors and a poll-tcp pump polling a closed
                port; its HL7 v2 sink delivers over MLLP to a python-hl7 EHR peer that rejects,
                drops and answers strays now and then; its broker check measures a real consumer lag
                on the Tansu test broker.
  devsync-edge  two `devsync edge --simulate` gateways: one forwarding to Mosquitto, one whose
                upstream is down with a tiny quota (it fills, ages and sheds: the outage view).
"""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.ops.conftest import DEPLOY, ROOT, free_port
from tests.ops.promql import alert_rules, dashboard_queries
from tests.support.mllp_ehr import MllpEhr

pytestmark = pytest.mark.integration

DEVSYNC = str(Path(sys.executable).parent / "devsync")
DEMO_SECONDS = 20
MQTT_PORT = 1883
# Dashboard queries that are legitimately empty in this setup, and why.
EMPTY_HERE = {
    "sum by (topic) (rate(devsync_kafka_published_total[10s]))":
        "Kafka runtime only: the hub under test runs the embedded runtime (no worker publishes)",
    "histogram_quantile(0.99, sum by (stage, le) (rate(devsync_kafka_batch_seconds_bucket[10s])))":
        "Kafka runtime only: no faust worker runs batches in the embedded demo",
}


def http_json(url: str, timeout: float = 10.0) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def wait_for(predicate, timeout: float, what: str, step: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out waiting for {what}")


class EhrThread:
    """The MLLP EHR peer on its own event loop: AE for every 7th message, a dropped connection at the
    5th and a stray ACK at the 9th (sink errors, retries and late ACKs for the dashboards)."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.ehr = MllpEhr(script=self.script)
        asyncio.run_coroutine_threadsafe(self.ehr.start(), self.loop).result(10)

    @staticmethod
    def script(control_id: str, n: int) -> tuple:
        if n == 5:
            return ("drop",)
        if n == 9:
            return ("stray", "NOT-" + control_id[:10])
        return ("AE", "test rejection") if n % 7 == 6 else ("AA",)

    def stop(self):
        asyncio.run_coroutine_threadsafe(self.ehr.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)


def write_rules(folder: Path, *, ehr_port: int | None = None, edge: dict | None = None) -> Path:
    folder.mkdir(parents=True)
    for path in (ROOT / "rules").glob("*.yaml"):
        shutil.copy(path, folder / path.name)
    if ehr_port:
        (folder / "sinks.yaml").write_text(yaml.safe_dump({"version": 1, "sinks": {"hl7v2": {
            "host": "127.0.0.1", "port": ehr_port, "ack_timeout_s": 2, "max_batch_delay_s": 0.2,
            "backoff": {"initial_s": 0.1, "max_s": 0.5}}}}))
    if edge is not None:
        ward = yaml.safe_load((folder / "ward.yaml").read_text())
        for device in ward["devices"]:
            device["gateway"] = edge["gateway_id"]
        (folder / "ward.yaml").write_text(yaml.safe_dump(ward))
        (folder / "edge.yaml").write_text(yaml.safe_dump({"version": 1, "edge": edge}))
    return folder


def start(cmd: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=ROOT)


def send_connector_traffic(ports: dict) -> None:
    """Real device traffic into the harness's listeners: PCD-01 over MLLP, JSON over HTTP, MQTT."""
    import hl7.client
    from paho.mqtt import publish

    sample = (ROOT.parent / "shared" / "data" / "hl7v2" / "ihe_pcd01_philips_physio_monitor.hl7").read_text()
    message = "\r".join(line for line in sample.replace("\r\n", "\n").replace("\r", "\n").split("\n") if line)
    with hl7.client.MLLPClient("127.0.0.1", ports["mllp"]) as client:
        for _ in range(3):
            client.send_message(message)
    body = json.dumps([{"code": "150456", "value": 97, "unit": "%", "time": time.time()}]).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{ports['http']}/v1/devices/OXI-01/observations",
                                     data=body, headers={"Content-Type": "application/json"}, method="POST")
    urllib.request.urlopen(request, timeout=10).read()
    publish.single(f"devsync-ops-test/{ports['health']}/MON-01/events", b"not json", qos=1,
                   hostname="127.0.0.1", port=MQTT_PORT)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, prometheus_bins, kafka_bootstrap):
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    tmp = tmp_path_factory.mktemp("ops-live")
    lag_topic = f"devsync-ops-lag-{int(time.time())}"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(lag_topic, 2, 1)])[lag_topic].result(30)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for i in range(40):  # one record per batch: Tansu reports the high watermark as last batch base + 1
        producer.produce(lag_topic, key=str(i).encode(), value=b"x")
        assert producer.flush(30) == 0

    ehr = EhrThread()
    ports = {name: free_port() for name in ("health", "mllp", "http", "poll", "edge_ok", "edge_out", "prom", "dead")}
    procs: list[subprocess.Popen] = []
    procs.append(start([sys.executable, str(ROOT / "tests" / "ops" / "hub_harness.py"),
                        "--rules", str(write_rules(tmp / "rules", ehr_port=ehr.ehr.port)), "--out", str(tmp / "out"),
                        "--duration", str(DEMO_SECONDS), "--health-port", str(ports["health"]),
                        "--mllp-port", str(ports["mllp"]), "--http-port", str(ports["http"]),
                        "--poll-port", str(ports["poll"]), "--mqtt-port", str(MQTT_PORT),
                        "--bootstrap", kafka_bootstrap, "--lag-topic", lag_topic], tmp / "hub.log"))
    for name, upstream, edge in (
            ("edge_ok", f"127.0.0.1:{MQTT_PORT}", {"gateway_id": "edge-ok"}),
            ("edge_out", f"127.0.0.1:{ports['dead']}", {"gateway_id": "edge-out", "quota_bytes": 65536})):
        rules = write_rules(tmp / f"rules-{name}", edge=edge)
        procs.append(start([DEVSYNC, "edge", "--rules", str(rules), "--buffer", str(tmp / f"{name}.db"),
                            "--mqtt", upstream, "--simulate", "--health-port", str(ports[name]),
                            "--log-level", "WARNING"], tmp / f"{name}.log"))
    config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
              "rule_files": [str(DEPLOY / "prometheus" / "alerts.yaml")],
              "scrape_configs": [
                  {"job_name": "devsync-hub", "static_configs": [{"targets": [f"127.0.0.1:{ports['health']}"]}]},
                  {"job_name": "devsync-edge", "static_configs": [{"targets": [
                      f"127.0.0.1:{ports['edge_ok']}", f"127.0.0.1:{ports['edge_out']}"]}]}]}
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    procs.append(start([prometheus_bins["prometheus"], f"--config.file={tmp / 'prometheus.yml'}",
                        f"--web.listen-address=127.0.0.1:{ports['prom']}", f"--storage.tsdb.path={tmp / 'tsdb'}",
                        "--log.level=warn"], tmp / "prometheus.log"))
    prom = f"http://127.0.0.1:{ports['prom']}"
    started = time.time()
    try:
        wait_for(lambda: _ready(prom), 30, "Prometheus to be ready")
        wait_for(lambda: _ready(f"http://127.0.0.1:{ports['health']}", "/healthz"), 30, "the hub's /healthz")
        # Traffic only once Prometheus has scraped the hub (rate() needs samples before and after), twice.
        wait_for(lambda: query(prom, 'up{job="devsync-hub"} == 1')[1].get("data", {}).get("result"), 30,
                 "the first scrape of the hub")
        for _ in range(2):
            send_connector_traffic(ports)
            time.sleep(3)
        hub_log = tmp / "hub.log"
        wait_for(lambda: "demo finished" in hub_log.read_text(), DEMO_SECONDS + 60, "the demo to finish", step=1)
        time.sleep(3)  # a few more scrapes after the last deliveries
        yield {"prom": prom, "start": started, "ports": ports, "ehr": ehr.ehr, "tmp": tmp, "lag_topic": lag_topic}
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        ehr.stop()


def _ready(base: str, path: str = "/-/ready") -> bool:
    try:
        with urllib.request.urlopen(base + path, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def query(prom: str, expr: str) -> tuple[int, dict]:
    return http_json(f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))


def query_range(stack: dict, expr: str) -> dict:
    params = {"query": expr, "start": f"{stack['start']:.3f}", "end": f"{time.time():.3f}", "step": "1s"}
    status, body = http_json(f"{stack['prom']}/api/v1/query_range?" + urllib.parse.urlencode(params))
    assert status == 200 and body["status"] == "success", f"{expr}: {body}"
    return body["data"]


def has_finite_value(data: dict) -> bool:
    return any(math.isfinite(float(v)) for series in data["result"] for _, v in series["values"])


def test_every_target_is_scraped(stack):
    status, body = http_json(f"{stack['prom']}/api/v1/targets")
    assert status == 200
    targets = body["data"]["activeTargets"]
    assert len(targets) == 3
    assert {t["health"] for t in targets} == {"up"}, [(t["scrapeUrl"], t["lastError"]) for t in targets]


@pytest.mark.parametrize("board, title, expr", [
    pytest.param(*q, id=f"{q[0][:-5]}-{q[1]}-{i}") for i, q in enumerate(dashboard_queries())])
def test_dashboard_query_returns_data(stack, board, title, expr):
    data = query_range(stack, expr)
    if expr in EMPTY_HERE:
        assert data["result"] == [], f"expected empty ({EMPTY_HERE[expr]}); it has data now: drop it from EMPTY_HERE"
        return
    assert has_finite_value(data), f"{board} / {title}: no data for {expr}"


def test_every_alert_expression_parses_and_evaluates(stack):
    for rule in alert_rules():
        status, body = query(stack["prom"], rule["expr"])
        assert status == 200 and body["status"] == "success", f"{rule['alert']}: {body}"


def test_bad_promql_is_refused(stack):
    status, body = query(stack["prom"], "sum by (data_class (rate(devsync_events_in_total[1m]))")
    assert status == 400 and body["errorType"] == "bad_data"


def test_alert_rules_load_and_evaluate_without_errors(stack):
    status, body = http_json(f"{stack['prom']}/api/v1/rules")
    assert status == 200
    rules = [r for g in body["data"]["groups"] for r in g["rules"]]
    assert len(rules) == len(alert_rules())
    assert {r["health"] for r in rules} == {"ok"}, [(r["name"], r.get("lastError")) for r in rules]


def test_outage_gateway_crosses_the_fill_thresholds_and_sheds(stack):
    fill = query_range(stack, 'max by (instance) (devsync_edge_fill_ratio)')
    peak = {s["metric"]["instance"]: max(float(v) for _, v in s["values"]) for s in fill["result"]}
    assert peak[f"127.0.0.1:{stack['ports']['edge_out']}"] > 0.8
    assert peak[f"127.0.0.1:{stack['ports']['edge_ok']}"] < 0.5
    _, body = query(stack["prom"], "max by (instance) (devsync_edge_shedding_alert) == 1")
    assert [s["metric"]["instance"] for s in body["data"]["result"]] == [f"127.0.0.1:{stack['ports']['edge_out']}"]
    _, body = query(stack["prom"], "sum by (instance) (devsync_edge_forwarded_total) > 0")
    assert [s["metric"]["instance"] for s in body["data"]["result"]] == [f"127.0.0.1:{stack['ports']['edge_ok']}"]


def test_hub_exports_lag_budgets_sink_errors_and_connector_health(stack):
    prom = stack["prom"]
    _, lag = query(prom, f'devsync_kafka_consumer_lag_records{{topic="{stack["lag_topic"]}"}}')
    assert [float(s["value"][1]) for s in lag["data"]["result"]] == [40.0]
    _, budget = query(prom, 'devsync_latency_budget_seconds{data_class="alarm"}')
    assert float(budget["data"]["result"][0]["value"][1]) == 0.5
    _, rejected = query(prom, 'sum(devsync_sink_messages_total{sink="hl7v2", answer="AE"})')
    assert float(rejected["data"]["result"][0]["value"][1]) >= 1
    _, up = query(prom, "devsync_connector_up")
    assert {s["metric"]["connector"]: s["value"][1] for s in up["data"]["result"]} == {
        "mllp": "1", "http": "1", "mqtt": "1", "poll": "0"}
    _, emitted = query(prom, 'devsync_connector_events_emitted_total{connector="mllp"}')
    assert float(emitted["data"]["result"][0]["value"][1]) >= 1


def test_hub_health_endpoints(stack):
    base = f"http://127.0.0.1:{stack['ports']['health']}"
    status, ready = http_json(base + "/readyz")
    assert status == 200 and ready["status"] == "ready"
    assert {c["name"] for c in ready["checks"]} == {"database", "sink.hl7v2", "connectors", "broker"}
    status, live = http_json(base + "/healthz")
    assert status == 200 and live["checks"][0]["name"] == "event-loop"
