"""Running counts of what the pipeline did: the live summary, the final report and the
Prometheus metrics all read from here (counted per batch, published at the checkpoint)."""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from operator import attrgetter

from hub import metrics
from hub.events import Event, effective_time_of
from hub.pipeline import Stage1Output
from hub.resolve.resolver import Resolution

LATENCY_SAMPLES = 20_000
data_class_of = attrgetter("data_class")


@dataclass
class Summary:
    budgets: dict = field(default_factory=dict)
    events_in: Counter = field(default_factory=Counter)  # by data class
    events_out: Counter = field(default_factory=Counter)
    duplicates: int = 0
    reordered: int = 0
    late: int = 0
    parked: int = 0
    unparked: int = 0
    parked_now: int = 0
    dlq: int = 0
    expired: int = 0
    associations: int = 0
    decisions: Counter = field(default_factory=Counter)  # by policy
    conflicts: Counter = field(default_factory=Counter)  # decisions with > 1 candidate, by policy
    review: int = 0
    budget_violations: Counter = field(default_factory=Counter)
    latency: dict = field(default_factory=dict)  # data class -> deque of received->out seconds
    _published: dict = field(default_factory=dict)
    _pending_latency: list = field(default_factory=list)  # observed into the histograms at the checkpoint

    def count_in(self, events: Iterable[Event]) -> None:
        for data_class, n in Counter(map(data_class_of, events)).items():  # counted in C: no Python call per event
            self.events_in[str(data_class)] += n

    def count_stage1(self, out: Stage1Output) -> None:
        self.duplicates += out.duplicates
        self.reordered += out.reordered
        self.late += out.late
        self.parked += len(out.parked)
        self.unparked += out.unparked
        self.dlq += len(out.dlq) + len(out.expired)
        self.expired += len(out.expired)
        self.associations += len(out.associations)

    def count_decision(self, res: Resolution) -> None:
        audit = res.audit.__dict__  # one read of the model (see hub.events.time_and_id)
        policy = audit["policy"]
        self.decisions[policy] += 1
        if len(audit["candidates"]) > 1:
            self.conflicts[policy] += 1
        if audit["review"]:
            self.review += 1

    def count_out(self, event: Event, now: float, *, timed: bool = True) -> None:
        fields = event.__dict__  # one read of the model (see hub.events.time_and_id)
        data_class = str(fields["data_class"])
        self.events_out[data_class] += 1
        if fields["provenance"].replayed or not timed:
            return  # replayed after an outage: original times kept, latency not counted
        received = now - fields["received_time"]
        samples = self.latency.get(data_class)
        if samples is None:
            samples = self.latency[data_class] = deque(maxlen=LATENCY_SAMPLES)
        samples.append(received)
        since_measured = now - effective_time_of(fields)
        self._pending_latency.append((data_class, received, since_measured))
        budget = self.budgets.get(fields["data_class"])
        if budget is not None and since_measured > budget:
            self.budget_violations[data_class] += 1

    def latency_percentile(self, q: float, data_class: str | None = None) -> float | None:
        values = sorted(v for dc, d in self.latency.items() if data_class in (None, dc) for v in d)
        if not values:
            return None
        return values[min(len(values) - 1, int(q / 100 * len(values)))]

    def as_dict(self) -> dict:
        return {
            "events_in": dict(self.events_in), "events_out": dict(self.events_out),
            "duplicates_dropped": self.duplicates, "reordered": self.reordered, "late": self.late,
            "parked": self.parked, "released_from_parking": self.unparked, "parked_now": self.parked_now,
            "dlq": self.dlq, "associations": self.associations,
            "decisions_by_policy": dict(self.decisions), "conflicts_resolved_by_policy": dict(self.conflicts),
            "flagged_for_review": self.review, "latency_budget_violations": dict(self.budget_violations),
            "latency_received_to_out_s": {
                dc: {"p50": self.latency_percentile(50, dc), "p99": self.latency_percentile(99, dc)}
                for dc in sorted(self.latency)},
        }

    def render(self, elapsed_s: float) -> str:
        p50, p99 = self.latency_percentile(50), self.latency_percentile(99)
        lines = [f"-- DeviceSync Hub live summary  t={elapsed_s:5.1f}s " + "-" * 30]
        classes = sorted(set(self.events_in) | set(self.events_out))
        lines.append("  " + "  ".join(f"{dc}: {self.events_in[dc]}>{self.events_out[dc]}" for dc in classes))
        lines.append(f"  duplicates dropped {self.duplicates}  reordered {self.reordered}  late {self.late}  "
                     f"parked {self.parked} (now {self.parked_now}, released {self.unparked})  dlq {self.dlq}")
        lines.append("  conflicts resolved: " + (", ".join(f"{p} {n}" for p, n in sorted(self.conflicts.items()))
                                                  or "none yet") + f"  review {self.review}")
        fmt = (lambda v: "-" if v is None else f"{v * 1000:.0f} ms")
        lines.append(f"  latency received->out p50 {fmt(p50)}  p99 {fmt(p99)}")
        return "\n".join(lines)

    def publish_metrics(self) -> None:
        """Push the counts gathered since the last call into the Prometheus metrics."""
        def delta(key, value):
            previous = self._published.get(key, 0)
            self._published[key] = value
            return value - previous
        for dc, n in self.events_in.items():
            if d := delta(("in", dc), n):
                metrics.EVENTS_IN.labels("pipeline", dc).inc(d)
        for dc, n in self.events_out.items():
            if d := delta(("out", dc), n):
                metrics.EVENTS_OUT.labels("pipeline", dc).inc(d)
        for policy, n in self.decisions.items():
            if d := delta(("decision", policy), n):
                metrics.DECISIONS.labels(policy).inc(d)
        for policy, n in self.conflicts.items():
            if d := delta(("conflict", policy), n):
                metrics.CONFLICTS.labels(policy).inc(d)
        for dc, n in self.budget_violations.items():
            if d := delta(("budget", dc), n):
                metrics.BUDGET_VIOLATIONS.labels(dc).inc(d)
        for key, counter, value in (("dup", metrics.DUPLICATES.labels("all"), self.duplicates),
                                    ("reordered", metrics.REORDERED.labels("all"), self.reordered),
                                    ("late", metrics.LATE.labels("all"), self.late),
                                    ("parked", metrics.PARKED.labels("all"), self.parked),
                                    ("unparked", metrics.UNPARKED, self.unparked),
                                    ("review", metrics.REVIEW, self.review)):
            if d := delta(key, value):
                counter.inc(d)
        if d := delta("dlq", self.dlq):
            metrics.DLQ.labels("pipeline").inc(d)
        metrics.PARKED_NOW.set(self.parked_now)
        for data_class, received, device in self._pending_latency:
            metrics.LATENCY_RECEIVED.labels(data_class).observe(received)
            metrics.LATENCY_DEVICE.labels(data_class).observe(device)
        self._pending_latency.clear()
