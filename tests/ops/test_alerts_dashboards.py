"""Alert rules and dashboards, checked offline: promtool check/test, metric names the hub really
exports, every alert unit-tested, dashboards in the Grafana 10 shape and as the generator writes them."""

from __future__ import annotations

import json
import re
import runpy
import subprocess

import pytest
import yaml

from tests.ops.conftest import DEPLOY, known_metric_names
from tests.ops.promql import ALERTS, GRAFANA, alert_rules, dashboard_queries, metric_names

PROMETHEUS_OWN = {"up"}  # synthetic series Prometheus adds per target


def test_promtool_check_rules(prometheus_bins):
    run = subprocess.run([prometheus_bins["promtool"], "check", "rules", str(ALERTS)], check=False, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in run.stdout


def test_promtool_unit_tests_pass(prometheus_bins):
    tests = sorted((DEPLOY / "prometheus" / "tests").glob("*.yaml"))
    assert tests
    run = subprocess.run([prometheus_bins["promtool"], "test", "rules", *map(str, tests)], check=False, capture_output=True,
                         text=True, timeout=120, cwd=DEPLOY / "prometheus" / "tests")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS" in run.stdout


def test_promtool_unit_tests_catch_a_broken_threshold(prometheus_bins, tmp_path):
    """The unit tests can fail: raise the edge 80% threshold to 95% and the expected alert goes missing."""
    broken = ALERTS.read_text().replace("(devsync_edge_fill_ratio) > 0.8", "(devsync_edge_fill_ratio) > 0.95")
    assert broken != ALERTS.read_text()
    (tmp_path / "alerts.yaml").write_text(broken)
    tests = tmp_path / "tests"
    tests.mkdir()
    for path in (DEPLOY / "prometheus" / "tests").glob("*.yaml"):
        (tests / path.name).write_text(path.read_text())
    run = subprocess.run([prometheus_bins["promtool"], "test", "rules", *[p.name for p in tests.glob("*.yaml")]],
                         check=False, capture_output=True, text=True, timeout=120, cwd=tests)
    assert run.returncode != 0
    assert "DevsyncEdgeBufferNearlyFull" in run.stdout + run.stderr


def test_every_alert_has_a_firing_unit_test():
    fired: set[str] = set()
    for path in (DEPLOY / "prometheus" / "tests").glob("*.yaml"):
        for test in yaml.safe_load(path.read_text())["tests"]:
            fired |= {case["alertname"] for case in test.get("alert_rule_test", []) if case.get("exp_alerts")}
    alerts = {rule["alert"] for rule in alert_rules()}
    assert alerts - fired == set(), "alerts without a promtool test that makes them fire"


def test_required_alert_topics_are_covered():
    exprs = " ".join(rule["expr"] for rule in alert_rules())
    for metric in ("devsync_latency_budget_violations_total", "devsync_dlq_total", "devsync_parked_oldest_age_seconds",
                   "devsync_edge_fill_ratio", "devsync_edge_queue_oldest_age_seconds", "devsync_connector_up",
                   "devsync_kafka_consumer_lag_records", "devsync_sink_messages_total"):
        assert metric in exprs, f"no alert about {metric}"
    assert "> 0.5" in exprs and "> 0.8" in exprs  # edge buffer half and 80% full


def test_alerts_have_severity_summary_and_runbook():
    for rule in alert_rules():
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert {"summary", "description", "runbook_url"} <= set(rule["annotations"]), rule["alert"]
        assert "#" in rule["annotations"]["runbook_url"]


@pytest.mark.parametrize("source", ["alerts", "dashboards"])
def test_every_metric_used_is_exported_by_the_hub(source):
    known = known_metric_names()
    exprs = [r["expr"] for r in alert_rules()] if source == "alerts" else [q[2] for q in dashboard_queries()]
    used = set().union(*(metric_names(e) for e in exprs))
    assert used, "no devsync metric found in the expressions"
    assert used - known == set(), f"{source} use metrics nothing exports"


def test_metric_name_check_can_fail():
    assert "devsync_no_such_metric_total" not in known_metric_names()
    assert metric_names("rate(devsync_no_such_metric_total[5m])") == {"devsync_no_such_metric_total"}


def test_dashboards_are_what_the_generator_writes():
    generated = runpy.run_path(str(GRAFANA / "build_dashboards.py"))["render_all"]()
    on_disk = {p.name: p.read_text() for p in GRAFANA.glob("*.json")}
    assert generated == on_disk, "run: python deploy/grafana/build_dashboards.py"


def test_dashboards_have_the_grafana_10_shape():
    titles = set()
    for path in GRAFANA.glob("*.json"):
        board = json.loads(path.read_text())
        titles.add(board["title"])
        assert board["schemaVersion"] >= 36 and board["uid"].startswith("devsync-")
        assert board["templating"]["list"][0] == {**board["templating"]["list"][0], "type": "datasource",
                                                  "query": "prometheus"}
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids))
        for p in board["panels"]:
            assert set(p["gridPos"]) == {"x", "y", "w", "h"} and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
            if p["type"] != "row":
                assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
                assert p["targets"] and all(t["refId"] and t["expr"] for t in p["targets"])
                assert p["fieldConfig"]["defaults"]["unit"]
    assert titles == {"DeviceSync Hub / Overview", "DeviceSync Hub / Sinks", "DeviceSync Hub / Connectors and devices",
                      "DeviceSync Hub / Edge gateways"}


def test_overview_draws_latency_against_budget_per_class():
    overview = json.loads((GRAFANA / "overview.json").read_text())
    panel = next(p for p in overview["panels"] if p["title"].startswith("p99 latency vs budget"))
    exprs = [t["expr"] for t in panel["targets"]]
    assert any("histogram_quantile(0.99" in e and "by (data_class, le)" in e for e in exprs)
    assert any("devsync_latency_budget_seconds" in e for e in exprs)


def test_every_runbook_link_points_at_a_section_of_the_operations_guide():
    text = (DEPLOY.parent / "docs" / "operations.md").read_text()
    anchors = {re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
               for line in text.splitlines() if line.startswith("#")}
    for rule in alert_rules():
        url = rule["annotations"]["runbook_url"]
        assert url.split("#")[0].endswith("docs/operations.md") and url.split("#")[1] in anchors, rule["alert"]
        assert rule["alert"] in text, f"{rule['alert']} not described in docs/operations.md"
