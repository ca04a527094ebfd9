"""Normalised events built from a rule set, as the pipeline hands them to the renderers.

Used by the render tests (as an event factory) and by measure_render_rates. Each event carries what
normalise + associate would have added: metric, MDC/LOINC codes, UCUM unit, corrected time and
the patient binding.
"""

from __future__ import annotations

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
    Quality,
    make_event_id,
)
from hub.rules.models import RuleSet

DEFAULT_PATIENT = PatientBinding(patient_id="MRN0001", encounter_id="ENC0001", location="ICU1-BED01",
                                 patient_name="Doe^Jane")
T0 = 1_763_700_000.0  # 2025-11-21T04:40:00Z


def device_from_rules(rules: RuleSet, device_id: str) -> Device:
    entry = rules.device(device_id)
    if entry is None:
        raise KeyError(f"device {device_id!r} is not in the rules' device inventory")
    return Device(id=entry.id, type=entry.type, serial=entry.serial, eui64=entry.eui64, model=entry.model,
                  manufacturer=entry.manufacturer)


def sample_event(rules: RuleSet, *, device_id: str = "MON-01", metric: str = "heart-rate",
                 value: float | None = 80.0, unit: str | None = None, text: str | None = None,
                 code_sent: str | None = None, code_system_sent: str = "MDC", t: float = T0,
                 patient: PatientBinding | None = DEFAULT_PATIENT, quality: frozenset[Quality] = frozenset(),
                 data_class: DataClass | None = None, seq: int = 0, event_id: str | None = None) -> Event:
    """A normalised numeric (or, with `text=`, text) event for `metric` measured by `device_id`."""
    code = next(c for c in rules.codes if c.metric == metric)
    sent = code_sent or str(code.mdc_code)
    mdc_code = int(sent) if code_system_sent == "MDC" and sent.isdigit() else code.mdc_code
    is_text = text is not None
    return Event(
        event_id=event_id or make_event_id(device_id, sent, t, seq),
        kind=EventKind.TEXT if is_text else EventKind.NUMERIC,
        data_class=data_class or code.data_class,
        device=device_from_rules(rules, device_id),
        stream=f"{device_id}/{sent}", seq=seq, device_time=t - 0.25, received_time=t + 0.05,
        clock_offset=0.25, corrected_time=t,
        code_sent=sent, code_system_sent=code_system_sent, metric=metric, mdc_code=mdc_code,
        mdc_ref=code.mdc_ref if mdc_code == code.mdc_code else None, loinc=code.loinc,
        value_sent=text if is_text else value, unit_sent=None if is_text else (unit or code.unit),
        value=None if is_text else value, text=text, unit=None if is_text else (unit or code.unit),
        quality=quality, patient=patient, location=patient.location if patient else None,
        provenance=Provenance(connector="sample", raw_ref=f"{device_id}:{seq}"),
    )


def sample_alarm(rules: RuleSet, *, device_id: str = "OXI-02", condition: str = "196670^MDC_EVT_LO",
                 text: str | None = "SpO2 low", priority: AlarmPriority = AlarmPriority.MEDIUM,
                 state: AlarmState = AlarmState.ACTIVE, phase: AlarmPhase = AlarmPhase.START,
                 source_metric: str | None = "spo2", value: float | None = 86.0, t: float = T0,
                 patient: PatientBinding | None = DEFAULT_PATIENT, alarm_id: str = "ALM-0001", seq: int = 0) -> Event:
    """A canonical alarm event (PCD-04 input)."""
    code = next((c for c in rules.codes if c.metric == source_metric), None)
    return Event(
        event_id=make_event_id(device_id, "alarm", alarm_id, phase, t, seq),
        kind=EventKind.ALARM, data_class=DataClass.ALARM, device=device_from_rules(rules, device_id),
        stream=f"{device_id}/alarms", seq=seq, device_time=t, received_time=t, corrected_time=t,
        metric=source_metric, mdc_code=code.mdc_code if code else None, mdc_ref=code.mdc_ref if code else None,
        value=value, unit=code.unit if code and value is not None else None,
        alarm=Alarm(condition=condition, text=text, priority=priority, state=state, phase=phase,
                    alarm_id=alarm_id, source_metric=source_metric),
        patient=patient, location=patient.location if patient else None,
        provenance=Provenance(connector="sample"),
    )


def sample_bed(rules: RuleSet, *, t: float = T0, patient: PatientBinding | None = DEFAULT_PATIENT,
               seq: int = 0) -> list[Event]:
    """One bed's round of vitals from four devices: monitor, arterial line, cuff (spot check), pump."""
    e = sample_event
    return [
        e(rules, device_id="MON-01", metric="heart-rate", value=72, t=t, patient=patient, seq=seq),
        e(rules, device_id="MON-01", metric="spo2", value=97, t=t, patient=patient, seq=seq),
        e(rules, device_id="MON-01", metric="respiratory-rate", value=16, t=t, patient=patient, seq=seq),
        e(rules, device_id="MON-01", metric="temperature", value=36.8, t=t, patient=patient, seq=seq),
        e(rules, device_id="MON-01", metric="ecg-rhythm", text="MDC_ECG_SINUS_RHY", t=t, patient=patient, seq=seq),
        e(rules, device_id="ART-01", metric="bp-systolic", value=121, code_sent="150017", t=t, patient=patient,
          seq=seq),
        e(rules, device_id="ART-01", metric="bp-diastolic", value=78, code_sent="150018", t=t, patient=patient,
          seq=seq),
        e(rules, device_id="ART-01", metric="bp-mean", value=92, code_sent="150019", t=t, patient=patient, seq=seq),
        e(rules, device_id="NIBP-01", metric="bp-systolic", value=117, code_sent="150021", t=t - 30,
          patient=patient, data_class=DataClass.SPOT_CHECK, quality=frozenset({Quality.MANUAL}), seq=seq),
        e(rules, device_id="PUMP-01", metric="infusion-rate", value=12.5, t=t, patient=patient, seq=seq),
    ]
