"""Stage 2: conflict resolution per patient (pure; `now` passed in).

Numeric and text readings compete per (metric, time bucket): the bucket is
`resolve_window_s` long in corrected device time and closes `resolve_grace_s` after
its end (hub time). At close, the metric's policy picks one winner from the whole
candidate set, so the result does not depend on arrival order, and an audit record
lists every candidate. A candidate arriving after its bucket closed gets its own
decision: it is charted only if the closed bucket had no winner.

Alarms take the fast path: never held. Per (patient, alarm condition) the most severe
alarm present across devices wins; an alarm event is passed on when it comes from the
winning device or ends the condition, and every alarm event gets an audit record.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from hub.events import (ALARM_SEVERITY, AlarmState, DataClass, Event, EventKind, Quality, event_text, make_event_id,
                         time_and_id, trusted)
from hub.resolve.audit import AuditRecord, Candidate
from hub.resolve.policies import Choice, by_time, resolve_conflict
from hub.rules.models import RuleSet
from hub.rules.precedence import Policy, PrecedenceRule

CLOSED_MEMORY = 256  # closed buckets remembered per patient (for late candidates)
PRESENT_STATES = (AlarmState.ACTIVE, AlarmState.LATCHED, AlarmState.ACKNOWLEDGED)
COMPETING_KINDS = (EventKind.NUMERIC, EventKind.TEXT)


class Resolution(NamedTuple):
    observation: Event | None
    audit: AuditRecord
    reannounce: bool = False  # an alarm passed on again because it became the most severe


@dataclass(frozen=True)
class ResolveContext:
    rules: RuleSet
    fidelity_by_type: dict[str, int]
    precedence: dict[str, PrecedenceRule]

    _windows: dict = field(default_factory=dict)  # (data class, metric) -> (window, grace), derived

    @classmethod
    def from_rules(cls, rules: RuleSet) -> ResolveContext:
        return cls(rules, {t.name: t.fidelity for t in rules.device_types}, {p.metric: p for p in rules.precedence})

    def fidelity(self, event: Event) -> int:
        return self.fidelity_by_type.get(event.device.type, 0)

    def window(self, data_class: DataClass, metric: str | None) -> tuple[float, float]:
        key = (data_class, metric)
        cached = self._windows.get(key)
        if cached is None:
            profile = self.rules.profile(data_class)
            rule = self.precedence.get(metric or "")
            window = rule.window_s if rule and rule.window_s is not None else profile.resolve_window_s
            cached = self._windows[key] = (window, profile.resolve_grace_s)
        return cached


@dataclass
class PatientResolver:
    patient_id: str
    buckets: dict[tuple[str, float], dict[str, Event]] = field(default_factory=dict)  # key -> event id -> event
    bucket_close: dict[tuple[str, float], float] = field(default_factory=dict)  # key -> hub time it closes
    closed: OrderedDict = field(default_factory=OrderedDict)  # key -> winner event id or None
    alarms: dict[str, dict[str, Event]] = field(default_factory=dict)  # condition -> device id -> latest
    alarm_winner: dict[str, str | None] = field(default_factory=dict)  # condition -> winning device id
    next_close: float = float("inf")  # earliest bucket_close value (derived; saves a scan per event)

    def to_dict(self, encode: Callable[[Event], str] = event_text) -> dict:
        return {
            "patient_id": self.patient_id,
            "buckets": [[m, s, self.bucket_close[(m, s)], [encode(e) for e in evs.values()]]
                        for (m, s), evs in self.buckets.items()],
            "closed": [[m, s, w] for (m, s), w in self.closed.items()],
            "alarms": {c: {d: encode(e) for d, e in devs.items()} for c, devs in self.alarms.items()},
            "alarm_winner": self.alarm_winner,
        }

    @classmethod
    def from_dict(cls, data: dict) -> PatientResolver:
        state = cls(data["patient_id"])
        for metric, start, closes, events in data["buckets"]:
            state.buckets[(metric, start)] = {e.event_id: e for e in map(Event.from_json, events)}
            state.bucket_close[(metric, start)] = closes
            state.next_close = min(state.next_close, closes)
        for metric, start, winner in data["closed"]:
            state.closed[(metric, start)] = winner
        state.alarms = {c: {d: Event.from_json(e) for d, e in devs.items()} for c, devs in data["alarms"].items()}
        state.alarm_winner = dict(data["alarm_winner"])
        return state


def candidate_of(event: Event) -> Candidate:
    fields = event.__dict__  # one read of the model (see time_and_id)
    time, event_id = time_and_id(event)
    return trusted(Candidate, {"event_id": event_id, "device_id": fields["device"].id, "source": fields["source"],
                               "value": fields["value"], "text": fields["text"], "unit": fields["unit"], "time": time,
                               "quality": fields["quality"]})


def resolve_event(state: PatientResolver, event: Event, ctx: ResolveContext, now: float) -> list[Resolution]:
    """Take one normalised, patient-bound event; return the resolutions it completes now."""
    fields = event.__dict__  # one read of the model (see time_and_id)
    kind, metric, data_class = fields["kind"], fields["metric"], fields["data_class"]
    if kind is EventKind.ALARM:
        return resolve_alarm(state, event)
    if kind not in COMPETING_KINDS or metric is None:
        return [pass_through(state, event, "not a competing reading (waveform/status): passed through")]
    window, grace = ctx.window(data_class, metric)
    if window <= 0:
        return [pass_through(state, event, f"no resolution window for data class {data_class}")]
    time, event_id = time_and_id(event)
    start = (time // window) * window
    key = (metric, start)
    if key in state.closed:
        return [resolve_late(state, event, key, window, ctx)]
    state.buckets.setdefault(key, {}).setdefault(event_id, event)  # a copy of a candidate counts once
    if key not in state.bucket_close:
        closes = state.bucket_close[key] = max(now, start + window) + grace
        state.next_close = min(state.next_close, closes)
    return resolve_due(state, ctx, now) if now >= state.next_close else []


def resolve_due(state: PatientResolver, ctx: ResolveContext, now: float) -> list[Resolution]:
    """Close every bucket whose time has come, oldest first."""
    if now < state.next_close:
        return []
    due = sorted((k for k, closes in state.bucket_close.items() if closes <= now), key=lambda k: (k[1], k[0]))
    resolutions = [close_bucket(state, key, ctx) for key in due]
    state.next_close = min(state.bucket_close.values(), default=float("inf"))
    return resolutions


def close_all(state: PatientResolver, ctx: ResolveContext) -> list[Resolution]:
    """Close every open bucket (shutdown / end of a finite stream)."""
    resolutions = [close_bucket(state, key, ctx) for key in sorted(state.buckets, key=lambda k: (k[1], k[0]))]
    state.next_close = float("inf")
    return resolutions


def close_bucket(state: PatientResolver, key: tuple[str, float], ctx: ResolveContext) -> Resolution:
    candidates = sorted(state.buckets.pop(key).values(), key=by_time)  # the order policies and the audit list use
    state.bucket_close.pop(key)
    metric, start = key
    rule = ctx.precedence.get(metric)
    window, _ = ctx.window(candidates[0].data_class, metric)
    choice = resolve_conflict(candidates, rule, ctx.fidelity, presorted=True)
    observation = winning_observation(choice, candidates, metric, start)
    remember_closed(state, key, observation.event_id if observation else None)
    audit = trusted(AuditRecord, {
        "decision_id": make_event_id("decision", state.patient_id, metric, start),
        "patient_id": state.patient_id, "metric": metric, "window_start": start, "window_end": start + window,
        "policy": str(rule.policy if rule else Policy.MOST_RECENT_VALID),
        "candidates": tuple(map(candidate_of, candidates)),
        "winner_event_id": observation.event_id if observation else None,
        "winner_value": observation.value if observation else None, "reason": choice.reason, "review": choice.review,
    })
    return Resolution(observation, audit)


def winning_observation(choice: Choice, candidates: list[Event], metric: str, start: float) -> Event | None:
    if choice.winner is None:
        return None
    if choice.value is None:
        return choice.winner
    ids = sorted(c.event_id for c in candidates)
    return choice.winner.with_changes(
        event_id=make_event_id("average", metric, start, *ids), value=choice.value, source="average")


def remember_closed(state: PatientResolver, key: tuple[str, float], winner: str | None) -> None:
    state.closed[key] = winner
    while len(state.closed) > CLOSED_MEMORY:
        state.closed.popitem(last=False)


def resolve_late(state: PatientResolver, event: Event, key, window: float, ctx: ResolveContext) -> Resolution:
    metric, start = key
    earlier = state.closed[key]
    flagged = event.flagged(Quality.LATE)
    observation = flagged if earlier is None else None
    reason = ("arrived after its window closed with no winner: charted late" if earlier is None
              else f"arrived after its window closed; the decision stands (winner {earlier})")
    audit = AuditRecord(
        decision_id=make_event_id("late-decision", state.patient_id, metric, start, event.event_id),
        patient_id=state.patient_id, metric=metric, window_start=start, window_end=start + window,
        policy="late", candidates=(candidate_of(event),), winner_event_id=observation.event_id if observation else None,
        winner_value=observation.value if observation else None, reason=reason)
    return Resolution(observation, audit)


def pass_through(state: PatientResolver, event: Event, reason: str) -> Resolution:
    audit = AuditRecord(
        decision_id=make_event_id("pass", state.patient_id, event.event_id), patient_id=state.patient_id,
        metric=event.metric or str(event.kind), window_start=event.effective_time, window_end=event.effective_time,
        policy="pass-through", candidates=(candidate_of(event),), winner_event_id=event.event_id,
        winner_value=event.value, reason=reason)
    return Resolution(event, audit)


def resolve_alarm(state: PatientResolver, event: Event) -> list[Resolution]:
    """Most severe alarm per condition across devices; returns what reaches the alarm manager.

    Passed on: events of the winning device; the end of a condition; and when the winner
    changes away from a device (its alarm ended or dropped in priority), that device's
    event plus the new winner's latest event, so the alarm manager always holds the
    current most severe alarm.
    """
    alarm = event.alarm
    condition = alarm.condition if alarm else "unknown-alarm"
    devices = state.alarms.setdefault(condition, {})
    devices[event.device.id] = event
    present = [e for e in devices.values() if e.alarm and e.alarm.state in PRESENT_STATES]
    winner = max(present, key=lambda e: (ALARM_SEVERITY[e.alarm.priority], -e.effective_time, e.device.id),
                 default=None)
    previous = state.alarm_winner.get(condition)
    state.alarm_winner[condition] = winner.device.id if winner else None
    candidates = tuple(candidate_of(e) for e in sorted(devices.values(), key=lambda e: (e.effective_time, e.event_id)))
    if winner is None:
        del state.alarms[condition]
    handover = winner is not None and previous == event.device.id and winner.device.id != event.device.id
    passed = winner is None or winner.device.id == event.device.id or handover
    if winner is None:
        reason = "condition ended on every device" + ("" if previous else " (no start seen by this resolver)")
    elif handover:
        reason = f"winner changes from {event.device.id} to {winner.device.id}"
    elif passed:
        reason = "most severe present: this device"
    else:
        reason = f"condition already raised at higher/equal priority by {winner.device.id}"
    audit = AuditRecord(
        decision_id=make_event_id("alarm", state.patient_id, event.event_id), patient_id=state.patient_id,
        metric=f"alarm:{condition}", window_start=event.effective_time, window_end=event.effective_time,
        policy=str(Policy.MOST_SEVERE), candidates=candidates,
        winner_event_id=winner.event_id if winner else event.event_id, reason=reason)
    out = [Resolution(event if passed else None, audit)]
    if handover:
        out.append(Resolution(winner, audit.model_copy(update={
            "decision_id": make_event_id("alarm-handover", state.patient_id, event.event_id),
            "reason": f"now most severe after {event.device.id} changed"}), reannounce=True))
    return out


def is_fast_path(kind: EventKind, data_class: DataClass) -> bool:
    """An event of this kind and data class is never held (alarms)."""
    return kind is EventKind.ALARM or data_class is DataClass.ALARM
