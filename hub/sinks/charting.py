"""Charting policy (pure): which of a metric's values a sink charts, and why the rest are held back.

Many EHRs cannot take every-second vitals. Per sink and data class a policy charts the first
value, then one value per `interval_s` per patient and metric, plus at once when the value moved
beyond a threshold or right after an alarm on that metric. Times are the events' corrected times,
so the same input always gives the same decisions (and a simulated ten minutes is ten minutes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from hub.events import INVALID_FLAGS, Event, EventKind, Quality
from hub.rules.sinks import ChartingPolicy

NOT_VALID = INVALID_FLAGS | {Quality.QUESTIONABLE}


class ChartingDecision(NamedTuple):
    chart: bool
    reason: str


@dataclass(frozen=True, slots=True)
class LastCharted:
    time: float
    value: float | None


def policy_for(policies: Sequence[ChartingPolicy], event: Event) -> ChartingPolicy | None:
    for policy in policies:
        if event.data_class in policy.data_classes and (not policy.metrics or event.metric in policy.metrics):
            return policy
    return None


def decide_charting(policy: ChartingPolicy, last: LastCharted | None, event: Event, alarm_pending: bool) -> ChartingDecision:
    """Chart or hold `event` given the last charted value of its patient and metric."""
    bad = event.quality & NOT_VALID
    if policy.require_valid and bad:
        return ChartingDecision(False, f"not valid ({', '.join(sorted(q.value for q in bad))})")
    if last is None:
        return ChartingDecision(True, "first value")
    if policy.chart_on_alarm and alarm_pending:
        return ChartingDecision(True, "alarm on this metric")
    now = event.effective_time
    if now - last.time >= policy.interval_s:
        return ChartingDecision(True, f"interval of {policy.interval_s:g} s elapsed")
    change = _change(last.value, event.value)
    if change is not None:
        if policy.change_threshold is not None and change > policy.change_threshold:
            return ChartingDecision(True, f"changed by {change:g} (threshold {policy.change_threshold:g})")
        ratio = change / abs(last.value) if last.value else None
        if policy.change_threshold_ratio is not None and ratio is not None and ratio > policy.change_threshold_ratio:
            return ChartingDecision(True, f"changed by {ratio:.0%} (threshold {policy.change_threshold_ratio:.0%})")
    due = last.time + policy.interval_s
    return ChartingDecision(False, f"charting interval: last charted at {last.time:.3f}, next due at {due:.3f}")


def _change(before: float | None, after: float | None) -> float | None:
    if before is None or after is None:
        return None
    return abs(after - before)


class ChartingGate:
    """Remembers the last charted value per patient and metric for one sink (in memory, no I/O)."""

    def __init__(self, policies: Sequence[ChartingPolicy]):
        self.policies = tuple(policies)
        self._last: dict[tuple[str, str], LastCharted] = {}
        self._alarm_at: dict[tuple[str, str | None], float] = {}

    def observe(self, event: Event) -> None:
        """Alarms arm `chart_on_alarm` for their source metric (or every metric of the patient)."""
        if event.kind is EventKind.ALARM and event.alarm is not None and event.patient is not None:
            key = (event.patient.patient_id, event.alarm.source_metric)
            self._alarm_at[key] = max(self._alarm_at.get(key, event.effective_time), event.effective_time)

    def decide(self, event: Event) -> ChartingDecision:
        policy = policy_for(self.policies, event) if self.policies else None
        if policy is None or event.patient is None or event.metric is None:
            return ChartingDecision(True, "no charting policy")
        patient = event.patient.patient_id
        last = self._last.get((patient, event.metric))
        alarm_times = [self._alarm_at.get((patient, event.metric)), self._alarm_at.get((patient, None))]
        alarm_time = max((t for t in alarm_times if t is not None), default=None)
        alarm_pending = alarm_time is not None and (last is None or alarm_time > last.time)
        decision = decide_charting(policy, last, event, alarm_pending)
        if decision.chart:
            self._last[(patient, event.metric)] = LastCharted(event.effective_time, event.value)
        return decision
