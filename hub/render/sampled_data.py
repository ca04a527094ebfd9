"""ECG strips as FHIR R4 Observations with one `valueSampledData` component per lead (pure).

    strip = strip_from_waveform(event)                  # a waveform chunk, or build a Strip yourself
    obs = build_sampled_data_observation(strip)         # dict, JSON-ready (orjson / json)

The shape follows the HL7 PoCD SampleArrayObservation example (Observation
`ECGSampleArrayObservation`): code MDC_ECG_ELEC_POTL (131328), `effectivePeriod` covering
the samples, and per lead a component coded MDC_ECG_ELEC_POTL_<lead> (131328 + the lead's
ISO/IEEE 11073-10102 number, e.g. II -> 131330) whose SampledData carries origin (the
physical value of count 0), period (ms between samples), factor (unit per count),
dimensions 1 and the integer counts separated by spaces ("E" where samples are missing).
A partial record (sent ahead on an alarm) is tagged `partial-record` and names the alarm.
No fhir.resources here (hot path); the tests validate every output with fhir.resources.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from hub.errors import RuleError
from hub.events import Event
from hub.render.escape import fhir_time
from hub.render.mdc import MDC_SYSTEM_URI

UCUM = "http://unitsofmeasure.org"
EVENT_ID_SYSTEM = "urn:devsync:event-id"
ECG_TAG_SYSTEM = "urn:devsync:ecg"
SAMPLE_ARRAY_PROFILE = "http://hl7.org/fhir/uv/pocd/StructureDefinition/SampleArrayObservation"
MDC_ECG_ELEC_POTL = 131328
MISSING_SAMPLE = -32768  # a lost sample in integer waveforms (WFDB's invalid-sample value): "E" in SampledData
MDC_ECG_LEAD_BASE = 131072
# ISO/IEEE 11073-10102 lead numbers (DICOM CID 3001, MDC 2:n).
MDC_LEAD_NUMBERS = {
    "I": 1, "II": 2, "V1": 3, "V2": 4, "V3": 5, "V4": 6, "V5": 7, "V6": 8, "V7": 9, "V2R": 10, "V3R": 11,
    "V4R": 12, "V5R": 13, "V6R": 14, "V7R": 15, "X": 16, "Y": 17, "Z": 18, "CC5": 19, "CM5": 20, "LA": 21,
    "RA": 22, "LL": 23, "III": 61, "aVR": 62, "aVL": 63, "aVF": 64, "-aVR": 65, "V8": 66, "V9": 67, "V8R": 68,
    "V9R": 69,
}
# Monitoring leads without their own term: MIT-BIH's modified limb lead II is charted as lead II.
LEAD_ALIASES = {"MLII": "II", "MLI": "I", "MLIII": "III"}
_BY_UPPER = {name.upper(): name for name in MDC_LEAD_NUMBERS}
_UCUM_UNITS = {"uv": "uV", "µv": "uV", "μv": "uV", "mv": "mV", "v": "V"}


def lead_key(name: str) -> str | None:
    """`II`, `lead II`, `MDC_ECG_LEAD_II`, `MLII` -> `II`; None for a lead without an MDC term."""
    text = re.sub(r"\s*\(.*\)$", "", name.strip())
    text = re.sub(r"^(MDC_ECG_LEAD_|MDC_ECG_ELEC_POTL_|LEAD[\s_-]*|ECG[\s_-]+)", "", text, flags=re.IGNORECASE).strip()
    text = LEAD_ALIASES.get(text.upper(), text)
    return _BY_UPPER.get(text.upper())


def mdc_lead_ref(name: str) -> str:
    """The MDC lead reference id (`MDC_ECG_LEAD_II`); unknown leads keep their name."""
    key = lead_key(name)
    return f"MDC_ECG_LEAD_{key.upper() if key[0] != '-' else 'AVR_NEG'}" if key else name


def lead_potential_term(name: str) -> tuple[int, str]:
    """(code, reference id) of the lead's electrical potential, e.g. II -> (131330, MDC_ECG_ELEC_POTL_II).

    A lead without a term gets the unspecified MDC_ECG_ELEC_POTL (131328)."""
    key = lead_key(name)
    if key is None:
        return MDC_ECG_ELEC_POTL, "MDC_ECG_ELEC_POTL"
    suffix = key.upper() if key[0] != "-" else "AVR_NEG"
    return MDC_ECG_ELEC_POTL + MDC_LEAD_NUMBERS[key], f"MDC_ECG_ELEC_POTL_{suffix}"


@dataclass(frozen=True)
class LeadSeries:
    """One lead's counts; physical = (count - baseline) * factor, in `unit`. None = sample missing."""

    name: str
    data: Sequence[int | None]
    factor: float = 1.0
    baseline: float = 0.0
    unit: str = "uV"


@dataclass(frozen=True)
class Strip:
    """What one Observation carries: leads sampled together from `start_time` (UTC epoch s)."""

    identifier: str
    patient_id: str
    sample_rate_hz: float
    start_time: float
    leads: tuple[LeadSeries, ...]
    device_id: str | None = None
    encounter_id: str | None = None
    partial: bool = False
    alarm: str | None = None
    tags: tuple[str, ...] = field(default_factory=tuple)


def strip_from_waveform(event: Event, *, partial: bool = False, alarm: str | None = None) -> Strip:
    """A waveform event (one chunk, all leads one factor) as a Strip. Time: the corrected sample time."""
    wave = event.waveform
    if wave is None:
        raise RuleError(f"sampled data: event {event.event_id} ({event.kind}) carries no waveform")
    if event.patient is None:
        raise RuleError(f"sampled data: event {event.event_id} has no patient binding (park it until associated)")
    start = wave.start_time + event.clock_offset
    leads = tuple(LeadSeries(name, [None if v == MISSING_SAMPLE else v for v in samples], wave.factor, wave.baseline,
                             wave.unit)
                  for name, samples in zip(wave.leads, wave.samples, strict=True))
    return Strip(event.event_id, event.patient.patient_id, wave.sample_rate_hz, start, leads, device_id=event.device.id,
                 encounter_id=event.patient.encounter_id, partial=partial, alarm=alarm)


def build_sampled_data_observation(strip: Strip, *, patient_id_system: str = "urn:devsync:patient-id",
                                   encounter_id_system: str = "urn:devsync:encounter-id",
                                   device_id_system: str = "urn:devsync:device-id") -> dict:
    """The Observation dict for one strip. Raises RuleError when the strip cannot be rendered."""
    if not strip.leads:
        raise RuleError(f"sampled data: strip {strip.identifier} has no leads")
    if strip.sample_rate_hz <= 0:
        raise RuleError(f"sampled data: strip {strip.identifier} has sample rate {strip.sample_rate_hz:g} Hz (must be > 0)")
    n = len(strip.leads[0].data)
    if any(len(lead.data) != n for lead in strip.leads):
        raise RuleError(f"sampled data: strip {strip.identifier} leads differ in length "
                        f"({', '.join(f'{x.name}={len(x.data)}' for x in strip.leads)})")
    period_ms = 1000.0 / strip.sample_rate_hz
    obs: dict = {
        "resourceType": "Observation",
        "meta": {"profile": [SAMPLE_ARRAY_PROFILE]},
        "identifier": [{"system": EVENT_ID_SYSTEM, "value": strip.identifier}],
        "status": "preliminary" if strip.partial else "final",
        "code": {"coding": [{"system": MDC_SYSTEM_URI, "code": str(MDC_ECG_ELEC_POTL), "display": "MDC_ECG_ELEC_POTL"}]},
        "subject": {"type": "Patient", "identifier": {"system": patient_id_system, "value": strip.patient_id}},
        "effectivePeriod": {"start": fhir_time(strip.start_time),
                            "end": fhir_time(strip.start_time + max(n - 1, 0) / strip.sample_rate_hz)},
        "component": [_component(lead, period_ms) for lead in strip.leads],
    }
    tags = [{"system": ECG_TAG_SYSTEM, "code": t} for t in strip.tags]
    if strip.partial:
        tags.append({"system": ECG_TAG_SYSTEM, "code": "partial-record"})
    if tags:
        obs["meta"]["tag"] = tags
    if strip.alarm:
        obs["note"] = [{"text": f"partial record sent on alarm: {strip.alarm}" if strip.partial else strip.alarm}]
    if strip.encounter_id:
        obs["encounter"] = {"type": "Encounter", "identifier": {"system": encounter_id_system, "value": strip.encounter_id}}
    if strip.device_id:
        obs["device"] = {"type": "Device", "identifier": {"system": device_id_system, "value": strip.device_id}}
    return obs


def _component(lead: LeadSeries, period_ms: float) -> dict:
    code, ref = lead_potential_term(lead.name)
    unit = _UCUM_UNITS.get(lead.unit.lower(), lead.unit)
    origin = -lead.baseline * lead.factor
    coding = {"system": MDC_SYSTEM_URI, "code": str(code), "display": ref}
    concept: dict = {"coding": [coding]}
    if code == MDC_ECG_ELEC_POTL:
        concept["text"] = lead.name
    return {
        "code": concept,
        "valueSampledData": {
            "origin": {"value": _number(origin), "unit": unit, "system": UCUM, "code": unit},
            "period": _number(round(period_ms, 6)),
            "factor": _number(lead.factor),
            "dimensions": 1,
            "data": " ".join("E" if v is None else str(int(v)) for v in lead.data),
        },
    }


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else float(value)


def parse_sampled_data(sampled: dict) -> list[float | None]:
    """Physical values back from a SampledData dict (origin + factor * count; None for E/L/U)."""
    origin = float(sampled["origin"]["value"])
    factor = float(sampled.get("factor", 1))
    return [None if tok in ("E", "L", "U") else origin + factor * float(tok) for tok in sampled.get("data", "").split()]
