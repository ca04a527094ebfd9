#!/usr/bin/env bash
# Soak: run the demo ward through Kafka (Tansu test broker) for DURATION seconds at the demo's steady
# load, sample RSS and open file descriptors of the demo process tree every INTERVAL seconds, and print
# the least-squares slope (MB/hour, fds/hour). Samples: $OUT/soak.csv. Usage: scripts/soak.sh DURATION [INTERVAL]
set -euo pipefail
DURATION="${1:-300}"
INTERVAL="${2:-5}"
BIN="${BIN:-.venv/bin}"
OUT="${SOAK_OUT:-demo-out-soak}"
mkdir -p "$OUT"
exec "$BIN/python" - "$DURATION" "$INTERVAL" "$OUT" <<'PY'
import csv, os, subprocess, sys, time
from pathlib import Path
from hub.testing.broker import start_broker

duration, interval, out = float(sys.argv[1]), float(sys.argv[2]), Path(sys.argv[3])

def tree(pid):
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        try:
            todo += [int(c) for t in os.listdir(f"/proc/{p}/task")
                     for c in Path(f"/proc/{p}/task/{t}/children").read_text().split()]
        except OSError:
            pass
    return pids

def sample(pid):
    rss_kb = fds = 0
    for p in tree(pid):
        try:
            rss_kb += next(int(l.split()[1]) for l in Path(f"/proc/{p}/status").read_text().splitlines() if l.startswith("VmRSS:"))
            fds += len(os.listdir(f"/proc/{p}/fd"))
        except (OSError, StopIteration):
            pass
    return rss_kb / 1024.0, fds

def slope(xs, ys):
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0

broker = start_broker()
rows = []
try:
    proc = subprocess.Popen([sys.executable, "-m", "hub.cli", "demo", "--bootstrap", broker.bootstrap,
                             "--duration", str(int(duration)), "--out", str(out / "demo")],
                            stdout=open(out / "demo.log", "w"), stderr=subprocess.STDOUT)
    start = time.monotonic()
    while proc.poll() is None and time.monotonic() - start < duration + 600:
        rss, fds = sample(proc.pid)
        rows.append((round(time.monotonic() - start, 1), round(rss, 2), fds))
        time.sleep(interval)
    if proc.poll() is None:
        proc.terminate()
    code = proc.wait()
finally:
    broker.stop()
with open(out / "soak.csv", "w", newline="") as f:
    csv.writer(f).writerows([("t_s", "rss_mb", "open_fds"), *rows])
steady = rows[len(rows) // 5: len(rows) - len(rows) // 10] or rows  # skip start-up (first fifth) and shutdown (last tenth)
if len(steady) >= 2:
    t = [r[0] / 3600.0 for r in steady]
    print(f"soak: {len(rows)} samples over {rows[-1][0]:.0f} s, demo exit code {code}")
    print(f"soak: RSS {steady[0][1]:.1f} -> {steady[-1][1]:.1f} MB, slope {slope(t, [r[1] for r in steady]):+.2f} MB/hour")
    print(f"soak: open fds {steady[0][2]} -> {steady[-1][2]}, slope {slope(t, [r[2] for r in steady]):+.2f} fds/hour")
    # bounded structures (dedupe windows, closed-bucket memory, latency samples) fill during the first
    # minutes; the last third says whether memory keeps growing once they are full
    tail = steady[len(steady) * 2 // 3:]
    tt = [r[0] / 3600.0 for r in tail]
    print(f"soak: last third ({tail[0][0]:.0f}-{tail[-1][0]:.0f} s): RSS {min(r[1] for r in tail):.1f}-"
          f"{max(r[1] for r in tail):.1f} MB, slope {slope(tt, [r[1] for r in tail]):+.2f} MB/hour")
else:
    print(f"soak: too few samples ({len(rows)}); demo exit code {code}")
sys.exit(code)
PY
