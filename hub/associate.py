"""Device -> location -> patient association with time-versioned bindings (pure).

Bindings come from association events (an ADT feed, or static bindings in the rules):
"location L holds patient P from time T" (bind / update), "L is empty from T" (unbind),
or "device D is at location L / with patient P from T" (roaming devices such as an ECG
cart). An event is bound by its corrected time. An event that finds no patient is
parked with the reason and released when a binding that covers it arrives; parked
events older than `park_limit_s` expire (the runtime sends them to the DLQ).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from hub.events import Association, Event, PatientBinding
from hub.rules.models import RuleSet


@dataclass
class Timeline:
    """Values valid from a time on; sorted by time."""

    times: list[float] = field(default_factory=list)
    values: list[object] = field(default_factory=list)

    def set(self, at: float, value: object) -> None:
        i = bisect.bisect_right(self.times, at)
        if i > 0 and self.times[i - 1] == at:
            self.values[i - 1] = value
            return
        self.times.insert(i, at)
        self.values.insert(i, value)

    def at(self, when: float) -> object | None:
        i = bisect.bisect_right(self.times, when)
        return self.values[i - 1] if i else None

    def remove_value(self, predicate) -> None:
        keep = [(t, v) for t, v in zip(self.times, self.values, strict=True) if not predicate(v)]
        self.times = [t for t, _ in keep]
        self.values = [v for _, v in keep]


@dataclass
class AssociationState:
    """All bindings. In the Kafka runtime this is a global (replicated) table."""

    location_patient: dict[str, Timeline] = field(default_factory=dict)
    device_location: dict[str, Timeline] = field(default_factory=dict)
    device_patient: dict[str, Timeline] = field(default_factory=dict)
    inventory_location: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_rules(cls, rules: RuleSet) -> AssociationState:
        state = cls(inventory_location={d.id: d.location for d in rules.devices if d.location})
        for b in rules.association.static_bindings:
            binding = PatientBinding(patient_id=b.patient_id, encounter_id=b.encounter_id, location=b.location,
                                     patient_name=b.patient_name)
            state.location_patient.setdefault(b.location, Timeline()).set(float("-inf"), binding)
        return state


def apply_association(state: AssociationState, assoc: Association) -> None:
    """Record one binding change."""
    binding = None
    if assoc.patient_id and assoc.action in ("bind", "update"):
        binding = PatientBinding(patient_id=assoc.patient_id, encounter_id=assoc.encounter_id,
                                 location=assoc.location, patient_name=assoc.patient_name)
    if assoc.action == "cancel":
        cancel_binding(state, assoc)
        return
    if assoc.device_id:
        if assoc.location:
            state.device_location.setdefault(assoc.device_id, Timeline()).set(assoc.valid_from, assoc.location)
        if assoc.patient_id or assoc.action == "unbind":
            state.device_patient.setdefault(assoc.device_id, Timeline()).set(assoc.valid_from, binding)
        return
    if assoc.location:
        state.location_patient.setdefault(assoc.location, Timeline()).set(assoc.valid_from, binding)


def cancel_binding(state: AssociationState, assoc: Association) -> None:
    """A11 (cancel admit) removes the patient's binding; A13 (cancel discharge) removes the
    latest unbind of the location, so the patient is bound again."""
    target = state.location_patient.get(assoc.location or "")
    if target is None:
        return
    if (assoc.source_message or "").endswith("A13"):
        for i in range(len(target.values) - 1, -1, -1):
            if target.values[i] is None:
                del target.times[i], target.values[i]
                return
        return
    if assoc.patient_id:
        target.remove_value(lambda v: isinstance(v, PatientBinding) and v.patient_id == assoc.patient_id)


def locate_device(state: AssociationState, device_id: str, when: float) -> str | None:
    moved = state.device_location.get(device_id)
    location = moved.at(when) if moved else None
    return location or state.inventory_location.get(device_id)


def associate_event(state: AssociationState, event: Event) -> tuple[Event | None, str | None]:
    """Bind the event to a patient. Returns (bound event, None) or (None, reason to park)."""
    if event.patient is not None:
        return event, None
    binding, location, reason = find_binding(state, event.device.id, event.effective_time)
    if binding is None:
        return None, reason
    return event.with_changes(patient=binding, location=location), None


def find_binding(state: AssociationState, device_id: str, when: float
                 ) -> tuple[PatientBinding | None, str | None, str | None]:
    """(binding, location, None) for the patient the device served at `when` (a reading's corrected
    time), or (None, None, reason to park)."""
    direct = state.device_patient.get(device_id)
    binding = direct.at(when) if direct else None
    location = locate_device(state, device_id, when)
    if binding is None:
        if location is None:
            return None, None, f"device {device_id} has no location (not in the inventory and not bound by ADT)"
        timeline = state.location_patient.get(location)
        binding = timeline.at(when) if timeline else None
        if binding is None:
            return None, None, f"no patient bound to location {location} at the reading's time"
    return binding, location or binding.location, None


@dataclass
class ParkingLot:
    """Events waiting for an association, in arrival order, bounded."""

    limit_s: float
    max_events: int
    parked: dict[str, tuple[float, Event, str]] = field(default_factory=dict)  # event_id -> (since, event, reason)

    def park(self, event: Event, reason: str, now: float) -> Event | None:
        """Park; returns an evicted event (oldest) when over capacity."""
        self.parked[event.event_id] = (now, event, reason)
        if len(self.parked) > self.max_events:
            oldest = next(iter(self.parked))
            return self.parked.pop(oldest)[1]
        return None

    def retry(self, state: AssociationState) -> list[Event]:
        """Try every parked event again (after a binding change); return the now-bound ones."""
        released = []
        for event_id, (_, event, _) in list(self.parked.items()):
            bound, _ = associate_event(state, event)
            if bound is not None:
                del self.parked[event_id]
                released.append(bound)
        return released

    def expire(self, now: float) -> list[tuple[Event, str]]:
        expired = [(e, r) for since, e, r in self.parked.values() if now - since > self.limit_s]
        for event, _ in expired:
            del self.parked[event.event_id]
        return expired
