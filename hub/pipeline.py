"""The two processing stages, composed from the pure steps. No I/O, no clock: `now` is passed in.

Stage 1 (keyed by device stream): dedupe > clock correction > reorder (alarms skip it)
  > normalise codes/units > associate with a patient (or park).
Stage 2 (keyed by patient): resolve conflicts, with an audit record per decision.

Both runtimes (embedded asyncio, Kafka/faust) call exactly these functions; the state
objects serialise with to_dict()/from_dict() for faust tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hub.associate import AssociationState, ParkingLot, apply_association, associate_event
from hub.errors import DecodeError
from hub.events import Event, EventKind
from hub.normalise.clocks import ClockEstimator, correct_clock
from hub.normalise.codes import Normaliser, normalise_event
from hub.ordering.dedupe import DedupeWindow, dedupe_event
from hub.ordering.reorder import Released, ReorderBuffer, reorder_drain, reorder_flush, reorder_push
from hub.resolve.resolver import PatientResolver, Resolution, ResolveContext, close_all, is_fast_path, resolve_due, resolve_event
from hub.rules.models import RuleSet


@dataclass
class StreamState:
    dedupe: DedupeWindow
    reorder: ReorderBuffer
    clock: ClockEstimator

    def to_dict(self) -> dict:
        return {"dedupe": self.dedupe.to_dict(), "reorder": self.reorder.to_dict(), "clock": self.clock.to_dict()}

    @classmethod
    def from_dict(cls, data: dict) -> StreamState:
        return cls(DedupeWindow.from_dict(data["dedupe"]), ReorderBuffer.from_dict(data["reorder"]),
                   ClockEstimator.from_dict(data["clock"]))


@dataclass
class Stage1Output:
    ready: list[Event] = field(default_factory=list)  # normalised, patient-bound: to stage 2
    parked: list[tuple[Event, str]] = field(default_factory=list)
    expired: list[tuple[Event, str]] = field(default_factory=list)  # parked too long: to the DLQ
    dlq: list[tuple[Event, str]] = field(default_factory=list)  # bad data: to the DLQ with the reason
    associations: list[Event] = field(default_factory=list)
    duplicates: int = 0
    reordered: int = 0
    late: int = 0
    unparked: int = 0
    unparked_ids: list[str] = field(default_factory=list)

    def extend(self, other: Stage1Output) -> None:
        self.ready += other.ready
        self.parked += other.parked
        self.expired += other.expired
        self.dlq += other.dlq
        self.associations += other.associations
        self.duplicates += other.duplicates
        self.reordered += other.reordered
        self.late += other.late
        self.unparked += other.unparked
        self.unparked_ids += other.unparked_ids


class Stage1:
    """Per-stream processing. Association bindings and the parking lot are shared state."""

    def __init__(self, rules: RuleSet, associations: AssociationState | None = None):
        self.rules = rules
        self.normaliser = Normaliser.from_rules(rules)
        self.source_by_type = {t.name: t.source for t in rules.device_types}
        self.associations = associations or AssociationState.from_rules(rules)
        self.parking = ParkingLot(rules.association.park_limit_s, rules.association.park_max_events)

    def new_stream_state(self, event: Event) -> StreamState:
        profile = self.rules.profile(event.data_class)
        return StreamState(
            DedupeWindow(profile.dedupe_window_events),
            ReorderBuffer(profile.reorder_window_s, profile.reorder_max_events),
            ClockEstimator(self.rules.clocks.window_samples),
        )

    def process(self, state: StreamState, event: Event, now: float, out: Stage1Output | None = None) -> Stage1Output:
        """Process one event; results are appended to `out` (a batch's output) or a new one."""
        if out is None:
            out = Stage1Output()
        if not dedupe_event(state.dedupe, event.event_id):
            out.duplicates += 1
            return out
        if event.kind is EventKind.ASSOCIATION:
            self.apply_binding(event, out)
            return out
        event = correct_clock(state.clock, event, self.rules.clocks)
        if is_fast_path(event):
            self.finish([event], out, now)
            return out
        released = reorder_push(state.reorder, event, now)
        self.take(released, out, now)
        return out

    def tick(self, state: StreamState, now: float) -> Stage1Output:
        """Release events whose reorder window has passed."""
        out = Stage1Output()
        if state.reorder.held:
            self.take(reorder_flush(state.reorder, now), out, now)
        return out

    def expire_parked(self, now: float) -> Stage1Output:
        return Stage1Output(expired=[(e, f"parked too long: {r}") for e, r in self.parking.expire(now)])

    def drain(self, state: StreamState, now: float) -> Stage1Output:
        out = Stage1Output()
        self.finish(reorder_drain(state.reorder), out, now)
        return out

    def take(self, released: Released, out: Stage1Output, now: float) -> None:
        out.reordered += released.reordered
        out.late += released.late
        self.finish(released.events, out, now)

    def finish(self, events: list[Event], out: Stage1Output, now: float) -> None:
        for event in events:
            source = event.source or self.source_by_type.get(event.device.type)
            try:
                event = normalise_event(self.normaliser, event, source=source)
            except DecodeError as exc:
                out.dlq.append((event, f"normalise: {exc}"))
                continue
            bound, reason = associate_event(self.associations, event)
            if bound is None:
                evicted = self.parking.park(event, reason, now)
                out.parked.append((event, reason))
                if evicted is not None:
                    out.expired.append((evicted, "parking lot full (association.park_max_events): oldest evicted"))
            else:
                out.ready.append(bound)

    def apply_binding(self, event: Event, out: Stage1Output) -> None:
        if event.association is None:
            out.dlq.append((event, "association event without an association body"))
            return
        apply_association(self.associations, event.association)
        out.associations.append(event)
        released = self.parking.retry(self.associations)
        out.unparked += len(released)
        out.unparked_ids += [e.event_id for e in released]
        out.ready += released


class Stage2:
    """Per-patient conflict resolution."""

    def __init__(self, rules: RuleSet):
        self.ctx = ResolveContext.from_rules(rules)

    @staticmethod
    def new_patient_state(patient_id: str) -> PatientResolver:
        return PatientResolver(patient_id)

    def process(self, state: PatientResolver, event: Event, now: float) -> list[Resolution]:
        return resolve_event(state, event, self.ctx, now)

    def tick(self, state: PatientResolver, now: float) -> list[Resolution]:
        return resolve_due(state, self.ctx, now) if state.bucket_close else []

    def drain(self, state: PatientResolver) -> list[Resolution]:
        return close_all(state, self.ctx)
