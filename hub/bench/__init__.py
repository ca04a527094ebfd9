"""Benchmarks: `devsync bench NAME [options] --out FILE.json`.

Each benchmark is a module `hub.bench.<name>` exposing
    add_arguments(parser)          # its own options (optional)
    run(args) -> list[Figure]      # measures and returns figures
and is listed in BENCHMARKS. Results have one shape (DESIGN.md):
{"bench": NAME, "machine": {...}, "figures": [{"name", "value", "unit"}, ...]}
"""

from __future__ import annotations

import json
import os
import platform
import resource
from dataclasses import asdict, dataclass
from pathlib import Path

BENCHMARKS: dict[str, str] = {
    "embedded": "hub.bench.embedded",
    "kafka": "hub.bench.kafka",
    "edge": "hub.bench.edge",
    "ecg": "hub.bench.ecg",
    "connectors": "hub.bench.connectors",
    "sinks": "hub.bench.sinks",
    "holter": "hub.bench.holter",
}


@dataclass(frozen=True)
class Figure:
    name: str  # stable snake_case, e.g. embedded_pipeline_events_per_s
    value: float
    unit: str  # base units: events/s, s, bytes, MB, ratio


def machine_info() -> dict:
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
    }


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100.0 * (len(ordered) - 1))))
    return ordered[index]


def write_results(name: str, figures: list[Figure], out: str | Path | None) -> dict:
    result = {"bench": name, "machine": machine_info(), "figures": [asdict(f) for f in figures]}
    width = max((len(f.name) for f in figures), default=10)
    print(f"bench {name}")
    for f in figures:
        print(f"  {f.name:<{width}}  {f.value:>14,.4f}  {f.unit}")
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result, indent=2) + "\n")
    return result
