"""Event and rule factories for the sink and store tests (normalised events, as sinks receive them)."""

from __future__ import annotations

from pathlib import Path

from hub.events import (
    Alarm,
    AlarmPhase,
    AlarmPriority,
    AlarmState,
    DataClass,
    Device,
    Event,
    EventKind,
    PatientBinding,
    Provenance,
    make_event_id,
)
from hub.rules.load import load_rules
from hub.rules.models import RuleSet
from hub.rules.routing import Route
from hub.rules.sinks import SinkRules

REPO = Path(__file__).resolve().parents[2]
RULES = load_rules(REPO / "rules")
T0 = 1_795_000_000.0
MONITORS = {f"MRN{i:04d}": f"MON-0{i}" for i in range(1, 10)}


def rules_with(*, sinks: dict | None = None, routing: list[dict] | None = None, conversions=None) -> RuleSet:
    """The shipped rules with the sinks section (and optionally routing / unit conversions) replaced."""
    update: dict = {"sinks": SinkRules.model_validate(sinks or {})}
    if routing is not None:
        update["routing"] = [Route.model_validate(r) for r in routing]
    if conversions is not None:
        units = RULES.units.model_copy(update={"conversions": [type(RULES.units.conversions[0]).model_validate(c)
                                                               for c in conversions]})
        update["units"] = units
    return RULES.model_copy(update=update)


def _device(device_id: str) -> Device:
    entry = RULES.device(device_id)
    return Device(id=entry.id, type=entry.type, serial=entry.serial, eui64=entry.eui64, model=entry.model,
                  manufacturer=entry.manufacturer)


def patient(patient_id: str) -> PatientBinding:
    bed = int(patient_id[-1]) if patient_id[-1].isdigit() else 1
    return PatientBinding(patient_id=patient_id, encounter_id=f"ENC-{patient_id}", location=f"ICU1-BED0{bed}")


def vital(patient_id: str = "MRN0001", *, metric: str = "heart-rate", value: float = 80.0, t: float = T0,
          seq: int = 0, quality: frozenset = frozenset(), unit: str | None = None,
          data_class: DataClass = DataClass.VITAL, bound: bool = True) -> Event:
    code = next(c for c in RULES.codes if c.metric == metric)
    device_id = MONITORS.get(patient_id, "MON-01")
    return Event(
        event_id=make_event_id(device_id, code.mdc_code, t, seq, patient_id),
        kind=EventKind.NUMERIC, data_class=data_class, device=_device(device_id),
        stream=f"{device_id}/{code.mdc_code}", seq=seq, device_time=t, received_time=t + 0.1, corrected_time=t,
        code_sent=str(code.mdc_code), code_system_sent="MDC", metric=metric, mdc_code=code.mdc_code,
        mdc_ref=code.mdc_ref, loinc=code.loinc, value_sent=value, unit_sent=unit or code.unit, value=value,
        unit=unit or code.unit, source="monitor", quality=frozenset(quality),
        patient=patient(patient_id) if bound else None, location=patient(patient_id).location,
        provenance=Provenance(connector="test", raw_ref=f"{device_id}:{seq}"),
    )


def alarm(patient_id: str = "MRN0002", *, phase: AlarmPhase = AlarmPhase.START,
          state: AlarmState = AlarmState.ACTIVE, priority: AlarmPriority = AlarmPriority.HIGH,
          t: float = T0, seq: int = 0, source_metric: str | None = "spo2", alarm_id: str = "ALM-1",
          condition: str = "196652^MDC_EVT_LO_VAL_LT_LIM", text: str = "SpO2 low", value: float | None = 84.0) -> Event:
    device_id = MONITORS.get(patient_id, "MON-01")
    code = next((c for c in RULES.codes if c.metric == source_metric), None)
    return Event(
        event_id=make_event_id(device_id, "alarm", alarm_id, phase, t, seq),
        kind=EventKind.ALARM, data_class=DataClass.ALARM, device=_device(device_id),
        stream=f"{device_id}/alarms", seq=seq, device_time=t, received_time=t, corrected_time=t,
        metric=source_metric, mdc_code=code.mdc_code if code else None, mdc_ref=code.mdc_ref if code else None,
        value=value, unit=code.unit if code and value is not None else None,
        alarm=Alarm(condition=condition, text=text, priority=priority, state=state, phase=phase,
                    alarm_id=alarm_id, source_metric=source_metric),
        patient=patient(patient_id), location=patient(patient_id).location,
        provenance=Provenance(connector="test"),
    )
