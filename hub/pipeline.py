"""The two processing stages, composed from the pure steps. No I/O, no clock: `now` is passed in.

Stage 1 (keyed by device stream): dedupe > clock correction > reorder (alarms skip it)
  > normalise codes/units > associate with a patient (or park).
Stage 2 (keyed by patient): resolve conflicts, with an audit record per decision.

Both runtimes (embedded asyncio, Kafka/faust) call exactly these functions; the state
objects serialise with to_dict()/from_dict() for faust tables.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from hub.associate import AssociationState, ParkingLot, apply_association, find_binding
from hub.errors import DecodeError
from hub.events import Event, EventKind, effective_time_of, event_text, trusted
from hub.normalise.clocks import ClockEstimator, ClockVerdict, observe_clock, offset_fields
from hub.normalise.codes import Normaliser, normalised_fields
from hub.ordering.dedupe import DedupeWindow, dedupe_reading, is_resend
from hub.ordering.reorder import (Released, ReorderBuffer, release_in_order, reorder_drain, reorder_flush, reorder_push,
                                  reorder_restart)
from hub.resolve.resolver import PatientResolver, Resolution, ResolveContext, close_all, is_fast_path, resolve_due, resolve_event
from hub.rules.models import RuleSet


@dataclass
class StreamState:
    dedupe: DedupeWindow
    reorder: ReorderBuffer
    clock: ClockEstimator
    clock_held: list[tuple[float, Event]] = field(default_factory=list)  # (arrival, reading) of a suspected jump

    def to_dict(self, encode: Callable[[Event], str] = event_text) -> dict:
        return {"dedupe": self.dedupe.to_dict(), "reorder": self.reorder.to_dict(encode), "clock": self.clock.to_dict(),
                "clock_held": [[arrival, encode(e)] for arrival, e in self.clock_held]}

    @classmethod
    def from_dict(cls, data: dict) -> StreamState:
        return cls(DedupeWindow.from_dict(data["dedupe"]), ReorderBuffer.from_dict(data["reorder"]),
                   ClockEstimator.from_dict(data["clock"]),
                   [(arrival, Event.from_json(raw)) for arrival, raw in data.get("clock_held", [])])

    @property
    def holding(self) -> bool:
        return bool(self.reorder.held or self.clock_held)


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
        self.clocks = rules.clocks
        self.normaliser = Normaliser.from_rules(rules)
        self.source_by_type = {t.name: t.source for t in rules.device_types}
        self.associations = associations or AssociationState.from_rules(rules)
        self.parking = ParkingLot(rules.association.park_limit_s, rules.association.park_max_events)

    def new_stream_state(self, event: Event) -> StreamState:
        profile = self.rules.profile(event.data_class)
        return StreamState(
            DedupeWindow(profile.dedupe_window_events),
            ReorderBuffer(profile.reorder_window_s, profile.reorder_max_events),
            ClockEstimator(self.clocks.window_samples),
        )

    def process(self, state: StreamState, event: Event, now: float, out: Stage1Output | None = None) -> Stage1Output:
        """Process one event; results are appended to `out` (a batch's output) or a new one."""
        if out is None:
            out = Stage1Output()
        clocks = self.clocks
        fields = event.__dict__  # one read of the model (see hub.events.time_and_id)
        event_id, kind = fields["event_id"], fields["kind"]
        offset = fields["received_time"] - fields["device_time"]
        if is_resend(state.dedupe, event_id, offset, clocks.jump_threshold_s):
            out.duplicates += 1  # before the clock sees it: a resend says nothing new about the clock
            return out
        if kind is EventKind.ASSOCIATION:
            state.dedupe.remember(event_id, offset)
            self.apply_binding(event, out)
            return out
        verdict = ClockVerdict.STEADY if fields["provenance"].replayed else observe_clock(state.clock, offset, clocks)
        fast = is_fast_path(kind, fields["data_class"])
        suspect = verdict is ClockVerdict.SUSPECT
        if suspect and not fast:
            state.clock_held.append((now, event))  # decided by the next readings: jump confirmed or not
            return out
        jumped = verdict is ClockVerdict.JUMPED
        if state.clock_held and not suspect:
            self.release_clock_held(state, out, now, jumped=jumped)
        self.admit(state, event, now, out, jumped=jumped, fast=fast)
        return out

    def admit(self, state: StreamState, event: Event, now: float, out: Stage1Output, *, jumped: bool,
              fast: bool = False) -> None:
        """Dedupe against the clock as it now reads, correct the time, then reorder (alarms skip it)."""
        clocks = self.clocks
        fields = event.__dict__  # one read of the model (see hub.events.time_and_id)
        event_id = fields["event_id"]
        key = dedupe_reading(state.dedupe, event_id, fields["received_time"] - fields["device_time"],
                             clocks.jump_threshold_s, state.clock.offset())
        if key is None:
            out.duplicates += 1
            return
        corrections = offset_fields(state.clock, fields, clocks, jumped=jumped)
        if key != event_id:  # a new reading under a time its device had used before its clock went back
            corrections["event_id"] = key
        if not fast:
            seq, last = fields["seq"], state.reorder.last_released
            if jumped and last is not None and seq <= last:
                # the clock went back and the sequence with it (a device numbering by its clock, as PCD-01
                # connectors do): the numbering starts over; what was held goes first, nothing is "late"
                self.take(Released(reorder_restart(state.reorder)), out, now)
            if not release_in_order(state.reorder, seq):
                self.take(reorder_push(state.reorder, event.with_changes(**corrections), now), out, now)
                return
        self.finish_one(event, out, now, corrections)  # not held: corrected in the copy finish makes

    def tick(self, state: StreamState, now: float) -> Stage1Output:
        """Release events whose reorder window has passed, and readings held for a suspected clock
        jump that no later reading decided within clocks.suspect_hold_s (corrected with the offset
        before the suspicion: the device went quiet, nothing confirms the jump)."""
        out = Stage1Output()
        if state.clock_held and now - state.clock_held[0][0] >= self.clocks.suspect_hold_s:
            self.release_clock_held(state, out, now)
        if state.reorder.held:
            self.take(reorder_flush(state.reorder, now), out, now)
        return out

    def release_clock_held(self, state: StreamState, out: Stage1Output, now: float, *, jumped: bool = False) -> None:
        """Correct the held readings with the current offset (flagged clock-jump when it is a new one)."""
        held, state.clock_held = state.clock_held, []
        for _, event in held:
            self.admit(state, event, now, out, jumped=jumped)

    def expire_parked(self, now: float) -> Stage1Output:
        return Stage1Output(expired=[(e, f"parked too long: {r}") for e, r in self.parking.expire(now)])

    def drain(self, state: StreamState, now: float) -> Stage1Output:
        out = Stage1Output()
        if state.clock_held:
            self.release_clock_held(state, out, now)
        self.finish(reorder_drain(state.reorder), out, now)
        return out

    def take(self, released: Released, out: Stage1Output, now: float) -> None:
        out.reordered += released.reordered
        out.late += released.late
        self.finish(released.events, out, now)

    def finish(self, events: list[Event], out: Stage1Output, now: float) -> None:
        for event in events:
            self.finish_one(event, out, now)

    def finish_one(self, event: Event, out: Stage1Output, now: float, corrections: dict | None = None) -> None:
        """Normalise and associate the event, applying both, and the `corrections` stage 1 made on
        the way (the clock's, not applied yet), in one copy of it."""
        fields = {**event.__dict__, **corrections} if corrections else dict(event.__dict__)  # the new copy's fields
        source = fields["source"] or self.source_by_type.get(fields["device"].type)
        try:
            changes = normalised_fields(self.normaliser, fields, source=source)
        except DecodeError as exc:
            out.dlq.append((trusted(Event, fields), f"normalise: {exc}"))
            return
        if fields["patient"] is None:
            binding, location, reason = find_binding(self.associations, fields["device"].id,
                                                     effective_time_of(fields))  # unchanged by the normalisation
            if binding is None:
                fields.update(changes)
                parked = trusted(Event, fields)
                evicted = self.parking.park(parked, reason, now)
                out.parked.append((parked, reason))
                if evicted is not None:
                    out.expired.append((evicted, "parking lot full (association.park_max_events): oldest evicted"))
                return
            changes["patient"], changes["location"] = binding, location
        fields.update(changes)
        out.ready.append(trusted(Event, fields))

    def apply_binding(self, event: Event, out: Stage1Output, release_parked: bool = True) -> None:
        """Apply a binding and (unless the caller applies several first) release what it binds."""
        if event.association is None:
            out.dlq.append((event, "association event without an association body"))
            return
        apply_association(self.associations, event.association)
        out.associations.append(event)
        if release_parked:
            self.release_parked(out)

    def release_parked(self, out: Stage1Output) -> None:
        """Every parked event the bindings now cover goes on (one pass over the parking lot)."""
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
