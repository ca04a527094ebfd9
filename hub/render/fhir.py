"""FHIR R4 Observations and transaction Bundles as plain dicts (JSON-ready), serialised with orjson.

    obs = build_observation(event, ctx)
    body = dumps(build_transaction_bundle(events, ctx))

code carries BOTH a LOINC coding and the MDC coding of the code actually sent (LOINC 8480-6 cannot
tell an arterial line from a cuff; MDC 150017 vs 150021 can). subject, encounter and device are
logical references by identifier. identifier = the event id, which the Bundle uses for conditional
create (ifNoneExist), so a resent Bundle creates nothing twice. No fhir.resources on this path:
the tests validate every output with fhir.resources.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import Iterable
from urllib.parse import quote

import orjson

from hub.errors import RuleError
from hub.events import INVALID_FLAGS, Event, EventKind, Quality
from hub.render.context import RenderContext
from hub.render.escape import fhir_time
from hub.render.mdc import MDC_SYSTEM_URI

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
EVENT_ID_SYSTEM = "urn:devsync:event-id"
QUALITY_SYSTEM = "urn:devsync:quality"
VITAL_SIGNS_PROFILE = "http://hl7.org/fhir/StructureDefinition/vitalsigns"
# R4 vital-signs profiles whose code is exactly the rule file's LOINC code.
SPECIFIC_PROFILES = {
    "8867-4": "http://hl7.org/fhir/StructureDefinition/heartrate",
    "9279-1": "http://hl7.org/fhir/StructureDefinition/resprate",
    "8310-5": "http://hl7.org/fhir/StructureDefinition/bodytemp",
}
VITAL_SIGNS_CATEGORY = [{
    "coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
        "code": "vital-signs",
        "display": "Vital Signs",
    }],
}]
DATA_ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
PRELIMINARY_FLAGS = INVALID_FLAGS | {Quality.QUESTIONABLE}
FHIR_KINDS = (EventKind.NUMERIC, EventKind.TEXT)
BUNDLE_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, EVENT_ID_SYSTEM)
_NAMESPACE_BYTES = BUNDLE_NAMESPACE.bytes


def build_observation(event: Event, ctx: RenderContext) -> dict:
    """One numeric or text event -> FHIR R4 Observation dict. Raises RuleError for other kinds,
    events without a patient binding, or metrics without an MDC code in the rules."""
    if event.kind not in FHIR_KINDS:
        raise RuleError(f"build_observation: event {event.event_id} is of kind '{event.kind}'; "
                        f"only numeric and text events become Observations")
    if event.patient is None:
        raise RuleError(f"build_observation: event {event.event_id} has no patient binding (park it until associated)")
    metric = ctx.metric(event.metric)
    term = ctx.metric_term(event)
    loinc = event.loinc or (metric.loinc if metric else None)
    mdc_coding = {"system": MDC_SYSTEM_URI, "code": str(term.code)}
    if term.ref:
        mdc_coding["display"] = term.ref
    coding = [mdc_coding]
    if loinc:
        loinc_coding = {"system": LOINC, "code": loinc}
        display = metric.loinc_display if metric and metric.loinc == loinc else None
        if display:
            loinc_coding["display"] = display
        coding.insert(0, loinc_coding)
    code = {"coding": coding}
    if metric:
        code["text"] = metric.display
    vital = bool(metric and metric.vital_sign and loinc)
    obs: dict = {
        "resourceType": "Observation",
        "identifier": [{"system": EVENT_ID_SYSTEM, "value": event.event_id}],
        "status": "preliminary" if not PRELIMINARY_FLAGS.isdisjoint(event.quality) else "final",
        "code": code,
        "subject": {"type": "Patient",
                    "identifier": {"system": ctx.patient_id_system, "value": event.patient.patient_id}},
        "effectiveDateTime": fhir_time(event.effective_time),
        "issued": fhir_time(event.received_time),
    }
    meta: dict = {}
    if vital:
        obs["category"] = VITAL_SIGNS_CATEGORY
        specific = SPECIFIC_PROFILES.get(loinc)
        meta["profile"] = [VITAL_SIGNS_PROFILE, specific] if specific else [VITAL_SIGNS_PROFILE]
    if event.quality:
        meta["tag"] = [{"system": QUALITY_SYSTEM, "code": str(q)} for q in sorted(event.quality)]
    if meta:
        obs["meta"] = meta
    if event.patient.encounter_id:
        obs["encounter"] = {"type": "Encounter",
                            "identifier": {"system": ctx.encounter_id_system, "value": event.patient.encounter_id}}
    if event.kind is EventKind.NUMERIC:
        _set_quantity(obs, event)
    else:
        _set_text(obs, event, ctx)
    device = ctx.device_info(event.device)
    reference = {"type": "Device", "identifier": device.identifier}
    if device.display:
        reference["display"] = device.display
    obs["device"] = reference
    return obs


def _set_quantity(obs: dict, event: Event) -> None:
    value = event.value
    if value is None or not math.isfinite(value):
        if value is None:
            reason = "unknown"
        elif math.isnan(value):
            reason = "not-a-number"
        else:
            reason = "positive-infinity" if value > 0 else "negative-infinity"
        obs["dataAbsentReason"] = {"coding": [{"system": DATA_ABSENT, "code": reason}]}
        return
    quantity: dict = {"value": value}
    if event.unit:
        quantity.update(unit=event.unit, system=UCUM, code=event.unit)
    obs["valueQuantity"] = quantity


def _set_text(obs: dict, event: Event, ctx: RenderContext) -> None:
    text = event.text if event.text is not None else (event.value_sent if isinstance(event.value_sent, str) else None)
    if text is None or not text.strip():
        obs["dataAbsentReason"] = {"coding": [{"system": DATA_ABSENT, "code": "unknown"}]}
        return
    term = ctx.term_for_text(text)
    if term is not None:
        obs["valueCodeableConcept"] = {
            "coding": [{"system": MDC_SYSTEM_URI, "code": str(term.code), "display": term.ref}], "text": text}
    else:
        obs["valueString"] = text


def bundle_full_url(event_id: str) -> str:
    """Deterministic urn:uuid for an event's Bundle entry (same event -> same fullUrl on every resend):
    the RFC 4122 name-based (SHA-1, version 5) UUID of the event id, computed without uuid.UUID objects."""
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + event_id.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest.hex()
    return f"urn:uuid:{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def if_none_exist(event_id: str) -> str:
    """Conditional-create search: `identifier=urn:devsync:event-id|<event_id>` (event id URL-encoded)."""
    return f"identifier={EVENT_ID_SYSTEM}|{quote(event_id, safe='-._~')}"


def build_transaction_bundle(events: Iterable[Event], ctx: RenderContext) -> dict:
    """A transaction Bundle, one conditional-create POST per event (in the given order)."""
    entries = [
        {
            "fullUrl": bundle_full_url(event.event_id),
            "resource": build_observation(event, ctx),
            "request": {"method": "POST", "url": "Observation", "ifNoneExist": if_none_exist(event.event_id)},
        }
        for event in events
    ]
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def dumps(obj: dict) -> bytes:
    """JSON bytes (orjson): UTF-8, no whitespace."""
    return orjson.dumps(obj)
