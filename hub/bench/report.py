"""`make bench`: run every registered benchmark, merge into bench/results.json, bench/RESULTS.md and a
latency plot (bench/latency.png).

Each benchmark runs as its own `devsync bench NAME --out bench/NAME.json` subprocess (a crash or hang of
one is recorded and the rest still run). One Tansu broker is started for the benchmarks that take
`--bootstrap`, so the raw-broker passthrough ceiling (`kafka_passthrough_events_per_s`) and the pipeline
figures come from the same run; every events/s figure is shown as a ratio to that ceiling.

    python -m hub.bench.report [--out bench] [--only NAME ...] [--timeout-s 1800]

With --only, the other benchmarks keep their figures from the previous report; RESULTS.md then
says which benchmark was measured on which day.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

from hub.bench import BENCHMARKS, machine_info

CEILING = "kafka_passthrough_events_per_s"
TAKES_BOOTSTRAP = {"kafka", "edge"}


def run_one(name: str, out_dir: Path, bootstrap: str | None, timeout_s: float) -> dict:
    out = out_dir / f"{name}.json"
    out.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "hub.cli", "bench", name, "--out", str(out)]
    if bootstrap and name in TAKES_BOOTSTRAP:
        cmd += ["--bootstrap", bootstrap]
    started = time.monotonic()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
        error = None if proc.returncode == 0 and out.exists() else \
            f"exit {proc.returncode}: {(proc.stderr or proc.stdout).strip().splitlines()[-1:] or ['no output']}"
    except subprocess.TimeoutExpired:
        error = f"did not finish within {timeout_s:.0f} s"
    result = {"bench": name, "measured_on": time.strftime("%Y-%m-%d"), "seconds": round(time.monotonic() - started, 1),
              "error": error, "figures": []}
    if error is None:
        result["figures"] = json.loads(out.read_text())["figures"]
    return result


def ceiling_of(results: list[dict]) -> float | None:
    for r in results:
        for f in r["figures"]:
            if f["name"] == CEILING and f["value"]:
                return float(f["value"])
    return None


def measured_on_line(results: list[dict]) -> list[str]:
    """When a partial run (--only) merged into an earlier report: which benchmark ran when."""
    dates = {r["bench"]: r.get("measured_on", "an earlier run") for r in results}
    if len(set(dates.values())) <= 1:
        return []
    return ["Measured on: " + ", ".join(f"{bench} {date}" for bench, date in dates.items())
            + " (figures of different runs compare only with care; the ceiling is the kafka run's).", ""]


def markdown(results: list[dict], machine: dict) -> str:
    ceiling = ceiling_of(results)
    lines = ["# Benchmark results", "",
             f"Machine: {machine['platform']}, Python {machine['python']}, {machine['cpus']} CPUs ({machine['processor']}).",
             f"Raw-broker passthrough ceiling ({CEILING}, same run): "
             + (f"{ceiling:,.0f} events/s." if ceiling else "not measured (see failures)."), "",
             *measured_on_line(results),
             "| benchmark | figure | value | unit | ratio to broker ceiling |", "|---|---|---:|---|---:|"]
    for r in results:
        for f in r["figures"]:
            ratio = f"{f['value'] / ceiling:.3f}" if ceiling and f["unit"] == "events/s" and f["name"] != CEILING else ""
            value = f["value"]
            shown = f"{value:,.4g}" if isinstance(value, (int, float)) and not math.isnan(value) else str(value)
            lines.append(f"| {r['bench']} | {f['name']} | {shown} | {f['unit']} | {ratio} |")
    failed = [r for r in results if r["error"]]
    if failed:
        lines += ["", "## Failures", ""] + [f"- `{r['bench']}` ({r['seconds']} s): {r['error']}" for r in failed]
    return "\n".join(lines) + "\n"


def plot_latency(results: list[dict], path: Path) -> bool:
    """Bar chart of every latency figure (unit s, name containing latency/_p50/_p99) on a log scale."""
    points = [(f"{r['bench']}: {f['name']}", float(f["value"])) for r in results for f in r["figures"]
              if f["unit"] == "s" and ("latency" in f["name"] or "_p" in f["name"]) and f["value"] and f["value"] > 0]
    if not points:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 0.35 * len(points) + 1.5))
    ax.barh([p[0] for p in points], [p[1] for p in points])
    ax.set_xscale("log")
    ax.set_xlabel("seconds (log scale)")
    ax.set_title("Latency figures from the benchmark run")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench"))
    parser.add_argument("--only", nargs="*", help="benchmarks to run (default: all registered)")
    parser.add_argument("--timeout-s", type=float, default=1800.0, help="per benchmark")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    names = args.only or list(BENCHMARKS)
    from hub.testing.broker import start_broker

    broker = start_broker() if TAKES_BOOTSTRAP & set(names) else None
    kept = earlier_results(args.out, keep=set(BENCHMARKS) - set(names))  # --only: the others stay
    results = []
    try:
        for name in names:
            print(f"bench {name} ...", flush=True)
            results.append(run_one(name, args.out, broker.bootstrap if broker else None, args.timeout_s))
            print(f"bench {name}: {results[-1]['error'] or 'ok'} ({results[-1]['seconds']} s)", flush=True)
            write_report(in_registry_order(kept + results), args.out)  # an interrupted run still leaves one
    finally:
        if broker:
            broker.stop()
    print((args.out / "RESULTS.md").read_text())
    return 0


def earlier_results(out: Path, keep: set[str]) -> list[dict]:
    """The previous report's results of the benchmarks in `keep` (a partial run merges into it)."""
    path = out / "results.json"
    if not keep or not path.exists():
        return []
    return [r for r in json.loads(path.read_text())["benchmarks"] if r["bench"] in keep]


def in_registry_order(results: list[dict]) -> list[dict]:
    order = {name: i for i, name in enumerate(BENCHMARKS)}
    return sorted(results, key=lambda r: order.get(r["bench"], len(order)))


def write_report(results: list[dict], out: Path) -> None:
    machine = machine_info()
    (out / "results.json").write_text(json.dumps({"machine": machine, "benchmarks": results}, indent=2) + "\n")
    (out / "RESULTS.md").write_text(markdown(results, machine))
    plot_latency(results, out / "latency.png")


if __name__ == "__main__":
    sys.exit(main())
