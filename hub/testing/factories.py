"""Event factories for tests, simulators and benchmarks."""

from __future__ import annotations

from hub.events import (Alarm, AlarmPhase, AlarmPriority, AlarmState, Association, DataClass, Device, Event,
                        EventKind, Provenance, make_event_id)

DEFAULT_TYPES = {"MON": "multi-parameter-monitor", "ART": "arterial-line", "OXI": "pulse-oximeter",
                 "NIBP": "nibp-cuff", "PUMP": "infusion-pump", "VENT": "ventilator"}


def device_for(device_id: str) -> Device:
    return Device(id=device_id, type=DEFAULT_TYPES.get(device_id.split("-")[0], "multi-parameter-monitor"))


def numeric_event(device_id: str = "MON-01", code: str = "147842", value: float = 80.0, unit: str | None = "/min",
                  *, seq: int = 0, t: float = 1_700_000_000.0, received: float | None = None, stream: str | None = None,
                  data_class: DataClass = DataClass.VITAL, system: str = "MDC", quality=frozenset(),
                  connector: str = "test", event_id: str | None = None) -> Event:
    return Event(
        event_id=event_id or make_event_id(device_id, code, t, seq),
        kind=EventKind.NUMERIC, data_class=data_class, device=device_for(device_id),
        stream=stream or f"{device_id}/{code}", seq=seq, device_time=t,
        received_time=t if received is None else received, code_sent=code, code_system_sent=system,
        value_sent=value, unit_sent=unit, quality=frozenset(quality), provenance=Provenance(connector=connector))


def alarm_event(device_id: str = "MON-01", condition: str = "MDC_EVT_HI", priority: AlarmPriority = AlarmPriority.HIGH,
                state: AlarmState = AlarmState.ACTIVE, phase: AlarmPhase = AlarmPhase.START, *, seq: int = 0,
                t: float = 1_700_000_000.0, alarm_id: str | None = None, connector: str = "test") -> Event:
    return Event(
        event_id=make_event_id(device_id, "alarm", condition, t, state, seq),
        kind=EventKind.ALARM, data_class=DataClass.ALARM, device=device_for(device_id),
        stream=f"{device_id}/alarms", seq=seq, device_time=t, received_time=t,
        alarm=Alarm(condition=condition, priority=priority, state=state, phase=phase,
                    alarm_id=alarm_id or f"{device_id}:{condition}"),
        provenance=Provenance(connector=connector))


def association_event(location: str, patient_id: str | None, *, t: float = 1_600_000_000.0, action: str = "bind",
                      encounter_id: str | None = None, device_id: str | None = None, seq: int = 0,
                      patient_name: str | None = None, source: str = "ADT") -> Event:
    return Event(
        event_id=make_event_id("assoc", location, device_id, patient_id, action, t),
        kind=EventKind.ASSOCIATION, data_class=DataClass.ASSOCIATION,
        device=Device(id=source, type="adt-feed"), stream=f"adt/{location or device_id}", seq=seq,
        device_time=t, received_time=t,
        association=Association(action=action, location=location, device_id=device_id, patient_id=patient_id,
                                encounter_id=encounter_id, patient_name=patient_name, valid_from=t),
        provenance=Provenance(connector="adt"))
