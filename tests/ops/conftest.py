"""Fixtures of the operations tests: Prometheus/promtool from the Debian package, metric names."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `from tests.ops... import` and tests.support also work under a bare `pytest`
    sys.path.insert(0, str(ROOT))
DEPLOY = ROOT / "deploy"
CHART = ROOT / "helm" / "devsync"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def prometheus_bins() -> dict[str, str]:
    """prometheus and promtool, installed from Debian by scripts/install-test-peers.sh when missing."""
    if not (shutil.which("prometheus") and shutil.which("promtool")):
        run = subprocess.run(["bash", str(ROOT / "scripts" / "install-test-peers.sh")], check=False, capture_output=True,
                             text=True, timeout=600)
        assert run.returncode == 0, f"installing prometheus failed: {run.stderr[-2000:]}"
    found = {name: shutil.which(name) for name in ("prometheus", "promtool")}
    assert all(found.values()), f"prometheus/promtool not on PATH after install: {found}"
    return found


def known_metric_names() -> set[str]:
    """Every sample name the hub can export: the process-wide registry after importing every metrics
    module, plus an edge gateway's own registry (histograms and counters with their suffixes)."""
    import importlib

    from prometheus_client import REGISTRY

    for module in ("hub.metrics", "hub.sinks.metrics", "hub.holter.metrics", "hub.runtime.kafka_metrics",
                   "connectors.metrics", "connectors.ecg_stream.metrics"):
        importlib.import_module(module)
    from edge_buffer.metrics import EdgeMetrics

    names: set[str] = set()
    for registry in (REGISTRY, EdgeMetrics().registry):
        for family in registry.collect():
            names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
    return names


SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "summary": ("_count", "_sum"),
            "gauge": ("",), "info": ("_info",)}
