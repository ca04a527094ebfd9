"""A simulated ward for the demo, the tests and the benchmarks (deterministic from a seed).

Every device in the rules inventory produces what its type produces, at realistic rates:
monitors (HR, SpO2, resp rate, temperature), arterial lines and NIBP cuffs that disagree,
pulse oximeters, infusion pumps, a ventilator, a roaming ECG cart, and alarms. Injected on
purpose, as a real network and real devices do: redelivered duplicates, out-of-order
delivery within the reorder window, a few deliveries later than the window, a device whose
clock is 90 s behind, a kPa-speaking arterial line and a °F thermometer, one reading with a
code the rules do not know, and a bed whose device sends before its patient's admission
arrives (the ADT message comes late, backdated).

`generate_ward_events` returns (send offset in seconds, event) pairs sorted by offset.
Device times are what the device believes; received times are the planned arrival times.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from hub.events import (Alarm, AlarmPhase, AlarmPriority, AlarmState, Association, DataClass, Device, Event,
                        EventKind, Provenance, make_event_id)
from hub.rules.models import RuleSet

SKEWED_DEVICE = "MON-06"  # its clock runs 90 s behind
CLOCK_SKEW_S = -90.0
KPA_DEVICE = "ART-03"  # sends kPa
FAHRENHEIT_DEVICE = "MON-05"  # sends °F
LATE_BED = "ICU1-BED09"  # admission arrives late


@dataclass(frozen=True)
class Reading:
    code: str
    unit: str
    base: float
    spread: float
    every_s: float
    data_class: DataClass = DataClass.VITAL
    kind: EventKind = EventKind.NUMERIC


READINGS: dict[str, list[Reading]] = {
    "multi-parameter-monitor": [
        Reading("147842", "/min", 78, 6, 1), Reading("151562", "/min", 16, 3, 2),
        Reading("150456", "%", 96, 2, 1), Reading("150364", "Cel", 37.0, 0.4, 10),
        Reading("184327", "", 0, 0, 10, kind=EventKind.TEXT),
    ],
    "arterial-line": [Reading("150017", "mmHg", 118, 8, 1), Reading("150018", "mmHg", 72, 5, 1),
                      Reading("150019", "mmHg", 88, 5, 1)],
    "nibp-cuff": [Reading("150021", "mmHg", 131, 10, 15, DataClass.VITAL), Reading("150022", "mmHg", 80, 6, 15),
                  Reading("150023", "mmHg", 96, 6, 15), Reading("149546", "/min", 80, 6, 15)],
    "pulse-oximeter": [Reading("150456", "%", 95, 2, 1), Reading("149530", "/min", 82, 6, 1)],
    "infusion-pump": [Reading("157784", "ml/h", 125, 0, 10, DataClass.SETTING)],
    "ventilator": [Reading("151586", "/min", 14, 1, 5), Reading("151868", "mL", 450, 20, 5, DataClass.SETTING),
                   Reading("151976", "cmH2O", 5, 0, 5, DataClass.SETTING),
                   Reading("152196", "%", 40, 0, 5, DataClass.SETTING)],
    "ecg-cart": [Reading("147842", "/min", 76, 4, 20, DataClass.SPOT_CHECK),
                 Reading("147232", "ms", 380, 10, 20, DataClass.SPOT_CHECK),
                 Reading("147236", "ms", 410, 10, 20, DataClass.SPOT_CHECK)],
}
PROTOCOL_CONNECTOR = {"multi-parameter-monitor": "mllp", "arterial-line": "mllp", "pulse-oximeter": "mqtt",
                      "nibp-cuff": "http", "infusion-pump": "poll-tcp", "ventilator": "hybrid-tcp",
                      "ecg-cart": "ecg-file"}


@dataclass(frozen=True)
class Patient:
    patient_id: str
    encounter_id: str
    name: str
    location: str


def demo_patients(rules: RuleSet) -> list[Patient]:
    locations = sorted({d.location for d in rules.devices if d.location})
    return [Patient(f"MRN{100234 + i}", f"V{700100 + i}", f"Demo^Patient{i + 1:02d}", loc)
            for i, loc in enumerate(locations)]


@dataclass
class WardPlan:
    start_time: float
    duration_s: float
    rng: random.Random
    out: list[tuple[float, Event]] = field(default_factory=list)
    seq: dict[str, int] = field(default_factory=dict)

    def next_seq(self, stream: str) -> int:
        self.seq[stream] = self.seq.get(stream, -1) + 1
        return self.seq[stream]

    def send(self, offset: float, event: Event) -> None:
        self.out.append((offset, event))


def generate_ward_events(rules: RuleSet, duration_s: float = 30.0, seed: int = 7,
                         start_time: float = 1_767_000_000.0) -> list[tuple[float, Event]]:
    plan = WardPlan(start_time, duration_s, random.Random(seed))
    patients = demo_patients(rules)
    plan_admissions(plan, patients)
    for device in rules.devices:
        device_type = rules.device_type(device.type)
        for reading in READINGS.get(device.type, []):
            for offset in ticks(reading.every_s, duration_s, plan.rng):
                plan_reading(plan, device, device_type.name, reading, offset)
    plan_ecg_cart(plan, patients)
    plan_alarms(plan, rules)
    plan_unknown_code(plan)
    return deliver(plan)


def ticks(every_s: float, duration_s: float, rng: random.Random) -> Iterator[float]:
    t = rng.uniform(0, min(every_s, 1.0))
    while t < duration_s:
        yield t
        t += every_s


def device_of(entry) -> Device:
    return Device(id=entry.id, type=entry.type, model=entry.model, manufacturer=entry.manufacturer, eui64=entry.eui64)


def plan_reading(plan: WardPlan, entry, type_name: str, reading: Reading, offset: float) -> None:
    true_time = plan.start_time + offset
    device_time = true_time + (CLOCK_SKEW_S if entry.id == SKEWED_DEVICE else 0.0)
    value: float | str = round(reading.base + plan.rng.uniform(-reading.spread, reading.spread), 1)
    unit = reading.unit
    if entry.id == KPA_DEVICE and unit == "mmHg":
        value, unit = round(float(value) * 0.1333223684, 2), "kPa"
    if entry.id == FAHRENHEIT_DEVICE and unit == "Cel":
        value, unit = round(float(value) * 1.8 + 32, 1), "°F"
    text = None
    if reading.kind is EventKind.TEXT:
        value, unit, text = "MDC_ECG_SINUS_RHY", None, "MDC_ECG_SINUS_RHY"
    stream = f"{entry.id}/{reading.code}"
    seq = plan.next_seq(stream)
    event = Event(
        event_id=make_event_id(entry.eui64 or entry.id, reading.code, round(device_time, 3)),
        kind=reading.kind, data_class=reading.data_class, device=device_of(entry), stream=stream, seq=seq,
        device_time=device_time, received_time=true_time, code_sent=reading.code, code_system_sent="MDC",
        value_sent=value, unit_sent=unit, text=text,
        provenance=Provenance(connector=PROTOCOL_CONNECTOR.get(type_name, "simulated"), raw_ref=f"sim:{stream}:{seq}"))
    plan.send(offset, event)


def association(plan: WardPlan, offset: float, valid_from: float, patient: Patient | None, location: str | None,
                action: str = "bind", device_id: str | None = None) -> None:
    stream = f"adt/{location or device_id}"
    assoc = Association(action=action, location=location, device_id=device_id,
                        patient_id=patient.patient_id if patient else None,
                        encounter_id=patient.encounter_id if patient else None,
                        patient_name=patient.name if patient else None, valid_from=valid_from,
                        source_message="ADT^A01")
    plan.send(offset, Event(
        event_id=make_event_id("adt", stream, action, patient.patient_id if patient else None, valid_from),
        kind=EventKind.ASSOCIATION, data_class=DataClass.ASSOCIATION, device=Device(id="ADT", type="adt-feed"),
        stream=stream, seq=plan.next_seq(stream), device_time=plan.start_time + offset,
        received_time=plan.start_time + offset, association=assoc, provenance=Provenance(connector="mllp")))


def plan_admissions(plan: WardPlan, patients: list[Patient]) -> None:
    for patient in patients:
        if patient.location == LATE_BED:
            # admitted 60 s before the demo starts, but the ADT message arrives at 60% of the run
            association(plan, plan.duration_s * 0.6, plan.start_time - 60, patient, patient.location)
        else:
            association(plan, 0.0, plan.start_time - 3600, patient, patient.location)


def plan_ecg_cart(plan: WardPlan, patients: list[Patient]) -> None:
    """The roaming ECG cart is bound to the patient of bed 4 for the recording."""
    bed4 = next(p for p in patients if p.location.endswith("BED04"))
    association(plan, 0.0, plan.start_time - 5, bed4, None, device_id="ECGCART-1")


def plan_alarms(plan: WardPlan, rules: RuleSet) -> None:
    devices = {d.id: d for d in rules.devices}
    schedule = [
        # (device, condition, priority, start offset, duration)
        ("MON-02", "MDC_EVT_SPO2_LO", AlarmPriority.MEDIUM, 0.25, 0.2),
        ("OXI-02", "MDC_EVT_SPO2_LO", AlarmPriority.HIGH, 0.27, 0.15),
        ("PUMP-01", "MDC_EVT_FLOW_OCCL", AlarmPriority.HIGH, 0.4, 0.1),
        ("MON-07", "MDC_EVT_ECG_TACHY", AlarmPriority.MEDIUM, 0.5, 0.3),
        ("VENT-03", "MDC_EVT_PRESS_AWAY_HI", AlarmPriority.HIGH, 0.7, 0.05),
    ]
    for device_id, condition, priority, start, length in schedule:
        if device_id not in devices:
            continue
        entry = devices[device_id]
        for phase, state, at in ((AlarmPhase.START, AlarmState.ACTIVE, start),
                                 (AlarmPhase.END, AlarmState.INACTIVE, start + length)):
            offset = at * plan.duration_s
            t = plan.start_time + offset
            stream = f"{device_id}/alarms"
            plan.send(offset, Event(
                event_id=make_event_id(entry.eui64, "alarm", condition, phase, round(t, 3)),
                kind=EventKind.ALARM, data_class=DataClass.ALARM, device=device_of(entry), stream=stream,
                seq=plan.next_seq(stream), device_time=t, received_time=t,
                alarm=Alarm(condition=condition, priority=priority, state=state, phase=phase,
                            alarm_id=f"{device_id}:{condition}:{start}"),
                provenance=Provenance(connector="mllp")))


def plan_unknown_code(plan: WardPlan) -> None:
    t = plan.start_time + plan.duration_s * 0.33
    plan.send(plan.duration_s * 0.33, Event(
        event_id=make_event_id("MON-01", "VENDOR-XYZ", t), kind=EventKind.NUMERIC, data_class=DataClass.VITAL,
        device=Device(id="MON-01", type="multi-parameter-monitor"), stream="MON-01/VENDOR-XYZ", seq=0,
        device_time=t, received_time=t, code_sent="XYZ-42", code_system_sent="ACME", value_sent=3.0, unit_sent="mV",
        provenance=Provenance(connector="mllp")))


def deliver(plan: WardPlan) -> list[tuple[float, Event]]:
    """Apply the network: 2% redelivered, 5% delayed within the reorder window, 0.3% later than it."""
    rng = plan.rng
    delivered: list[tuple[float, Event]] = []
    for offset, event in plan.out:
        if event.kind in (EventKind.NUMERIC, EventKind.TEXT):
            roll = rng.random()
            if roll < 0.05:
                offset += rng.uniform(0.3, 1.5)
            elif roll < 0.053:
                offset += rng.uniform(3.5, 4.5)
            if rng.random() < 0.02:
                delivered.append((offset + rng.uniform(0.05, 1.0), event))
        delivered.append((offset, event.with_changes(received_time=plan.start_time + offset)))
    delivered.sort(key=lambda pair: pair[0])
    return delivered
