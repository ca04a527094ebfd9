"""Counts every fault scenario reports: events sent, delivered, parked, dead-lettered, duplicated.

    counts = FaultCounts("ehr-mllp-outage-60s", sent=..., delivered=..., parked=0, dlq=0, duplicated=0)
    report(counts)           # prints one line, appends it to the report file, then asserts
                             # zero lost and zero duplicated (lost = sent - delivered - parked - dlq
                             # where parked/DLQ are expected by the scenario, see `expected_elsewhere`)

The report file is $DEVSYNC_FAULT_REPORT (JSON lines; default: faults-report.jsonl in the
system temp folder). `make faults` runs every scenario alone and prints the table from it.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class FaultCounts:
    scenario: str
    sent: int
    delivered: int  # unique deliveries at the far end (EHR, broker topic, hub)
    parked: int = 0
    dlq: int = 0
    duplicated: int = 0  # deliveries beyond the first of the same event / message id
    expected_elsewhere: int = 0  # of `sent`, how many the scenario expects in parked/DLQ (bad data by design)
    figures: dict = field(default_factory=dict)  # scenario-specific figures (latency, outage length, ...)

    @property
    def lost(self) -> int:
        return self.sent - self.delivered - self.parked - self.dlq

    def line(self) -> str:
        extra = " ".join(f"{k}={v}" for k, v in self.figures.items())
        return (f"[fault] {self.scenario}: sent={self.sent} delivered={self.delivered} parked={self.parked} "
                f"dlq={self.dlq} duplicated={self.duplicated} lost={self.lost} {extra}").rstrip()


def report_path() -> Path:
    return Path(os.environ.get("DEVSYNC_FAULT_REPORT", Path(tempfile.gettempdir()) / "faults-report.jsonl"))


def report(counts: FaultCounts) -> None:
    """Print and record the counts, then fail unless nothing was lost or duplicated."""
    print(counts.line())
    with report_path().open("a") as f:
        f.write(json.dumps({**asdict(counts), "lost": counts.lost, "at": time.time()}) + "\n")
    assert counts.lost == 0, counts.line()
    assert counts.duplicated == 0, counts.line()
    assert counts.parked + counts.dlq == counts.expected_elsewhere, counts.line()


def table(lines: list[dict]) -> str:
    """Markdown table of the latest run of each scenario (docs/reliability.md uses this shape)."""
    latest = {row["scenario"]: row for row in lines}
    out = ["| Scenario | Sent | Delivered | Parked | DLQ | Duplicated | Lost | Figures |",
           "|---|---:|---:|---:|---:|---:|---:|---|"]
    for name, r in sorted(latest.items()):
        figures = ", ".join(f"{k} {v}" for k, v in r["figures"].items())
        out.append(f"| {name} | {r['sent']:,} | {r['delivered']:,} | {r['parked']:,} | {r['dlq']:,} | "
                   f"{r['duplicated']:,} | {r['lost']:,} | {figures} |")
    return "\n".join(out)


if __name__ == "__main__":
    path = report_path()
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    print(table(rows) if rows else f"no fault scenario reported into {path}")
