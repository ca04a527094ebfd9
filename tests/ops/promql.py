"""Every PromQL expression the operations artefacts use: dashboard targets and alert rules."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yaml"
METRIC = re.compile(r"\b(devsync_[a-z0-9_]+)\b")
GRAFANA_VARIABLES = {"$__rate_interval": "10s"}


def dashboard_queries() -> list[tuple[str, str, str]]:
    """(dashboard file, panel title, expression with Grafana variables filled in)."""
    found = []
    for path in sorted(GRAFANA.glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for t in panel.get("targets", []):
                expr = t["expr"]
                for var, value in GRAFANA_VARIABLES.items():
                    expr = expr.replace(var, value)
                found.append((path.name, panel["title"], expr))
    return found


def alert_rules(path: Path = ALERTS) -> list[dict]:
    return [rule for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]]


def metric_names(expr: str) -> set[str]:
    return set(METRIC.findall(expr))
