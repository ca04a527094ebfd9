"""build_observation / build_transaction_bundle: every resource validated by fhir.resources."""

from __future__ import annotations

import json
import uuid

import orjson
import pytest

from hub.errors import RuleError
from hub.events import PatientBinding, Quality
from hub.render.context import EUI64_SYSTEM
from hub.render.fhir import (
    BUNDLE_NAMESPACE,
    build_observation,
    build_transaction_bundle,
    bundle_full_url,
    dumps,
    if_none_exist,
)
from hub.render.samples import sample_bed
from hub.render.validate import validate_bundle, validate_observation

MDC = "urn:iso:std:iso:11073:10101"


def observe(event, ctx) -> dict:
    obs = build_observation(event, ctx)
    validate_observation(obs)
    return obs


def codings(obs, system):
    return [c for c in obs["code"]["coding"] if c["system"] == system]


def test_vital_sign_observation(ctx, event_factory):
    event = event_factory(device_id="MON-01", metric="heart-rate", value=72)
    obs = observe(event, ctx)
    assert obs["resourceType"] == "Observation"
    assert obs["status"] == "final"
    assert obs["category"][0]["coding"][0]["code"] == "vital-signs"
    assert obs["meta"]["profile"] == ["http://hl7.org/fhir/StructureDefinition/vitalsigns",
                                      "http://hl7.org/fhir/StructureDefinition/heartrate"]
    assert codings(obs, "http://loinc.org") == [{"system": "http://loinc.org", "code": "8867-4",
                                                 "display": "Heart rate"}]
    assert codings(obs, MDC) == [{"system": MDC, "code": "147842", "display": "MDC_ECG_CARD_BEAT_RATE"}]
    assert obs["valueQuantity"] == {"value": 72.0, "unit": "/min", "system": "http://unitsofmeasure.org",
                                    "code": "/min"}
    assert obs["effectiveDateTime"] == "2025-11-21T04:40:00.000+00:00"
    assert obs["subject"] == {"type": "Patient", "identifier": {"system": "urn:devsync:patient-id", "value": "MRN0001"}}
    assert obs["encounter"]["identifier"] == {"system": "urn:devsync:encounter-id", "value": "ENC0001"}
    assert obs["device"] == {"type": "Device", "identifier": {"system": EUI64_SYSTEM, "value": "0600DC7500010001"},
                             "display": "Philips IntelliVue-MX800"}
    assert obs["identifier"] == [{"system": "urn:devsync:event-id", "value": event.event_id}]


def test_arterial_line_and_cuff_share_loinc_but_not_mdc(ctx, event_factory):
    art = observe(event_factory(device_id="ART-01", metric="bp-systolic", value=121, code_sent="150017"), ctx)
    cuff = observe(event_factory(device_id="NIBP-01", metric="bp-systolic", value=117, code_sent="150021"), ctx)
    assert codings(art, "http://loinc.org")[0]["code"] == codings(cuff, "http://loinc.org")[0]["code"] == "8480-6"
    assert codings(art, MDC)[0]["code"] == "150017" and codings(art, MDC)[0]["display"] == "MDC_PRESS_BLD_ART_SYS"
    assert codings(cuff, MDC)[0]["code"] == "150021"
    assert art["meta"]["profile"] == ["http://hl7.org/fhir/StructureDefinition/vitalsigns"]


def test_sink_unit_is_reported_in_ucum(ctx, event_factory):
    obs = observe(event_factory(metric="temperature", value=98.6, unit="[degF]"), ctx)
    assert obs["valueQuantity"]["code"] == "[degF]" and obs["valueQuantity"]["value"] == 98.6


@pytest.mark.parametrize(
    ("quality", "status"),
    [({Quality.QUESTIONABLE}, "preliminary"), ({Quality.INVALID}, "preliminary"), ({Quality.LATE}, "final")],
)
def test_questionable_values_are_preliminary_and_flags_are_tagged(ctx, event_factory, quality, status):
    obs = observe(event_factory(quality=frozenset(quality)), ctx)
    assert obs["status"] == status
    assert obs["meta"]["tag"] == [{"system": "urn:devsync:quality", "code": str(q)} for q in quality]


@pytest.mark.parametrize(("value", "reason"), [(None, "unknown"), (float("nan"), "not-a-number"),
                                               (float("-inf"), "negative-infinity")])
def test_absent_values_have_a_data_absent_reason(ctx, event_factory, value, reason):
    obs = observe(event_factory(value=value), ctx)
    assert "valueQuantity" not in obs
    assert obs["dataAbsentReason"]["coding"][0]["code"] == reason
    json.loads(dumps(obs))  # NaN never reaches the JSON


def test_mdc_enumeration_text_is_a_codeable_concept(ctx, event_factory):
    obs = observe(event_factory(metric="ecg-rhythm", text="MDC_ECG_SINUS_RHY"), ctx)
    assert obs["valueCodeableConcept"]["coding"] == [{"system": MDC, "code": "147474", "display": "MDC_ECG_SINUS_RHY"}]
    assert "category" not in obs  # rhythm is not a vital sign in the rules


def test_free_text_is_a_value_string(ctx, event_factory):
    obs = observe(event_factory(metric="ecg-rhythm", text='Sinus | "brady" ^ & ~ \\'), ctx)
    assert obs["valueString"] == 'Sinus | "brady" ^ & ~ \\'


def test_non_vital_metric_has_no_vital_signs_profile(ctx, event_factory):
    obs = observe(event_factory(device_id="PUMP-01", metric="infusion-rate", value=12.5), ctx)
    assert "category" not in obs and "meta" not in obs
    assert [c["system"] for c in obs["code"]["coding"]] == [MDC]


def test_device_without_eui64_is_referenced_by_device_id(ctx, event_factory):
    event = event_factory()
    event = event.with_changes(device=event.device.model_copy(update={"id": "LOANER-9", "eui64": None}))
    assert observe(event, ctx)["device"]["identifier"] == {"system": "urn:devsync:device-id", "value": "LOANER-9"}


def test_rejects_events_that_are_not_observations(ctx, event_factory, alarm_factory):
    with pytest.raises(RuleError, match="kind 'alarm'"):
        build_observation(alarm_factory(), ctx)
    with pytest.raises(RuleError, match="no patient binding"):
        build_observation(event_factory(patient=None), ctx)


def test_transaction_bundle_uses_conditional_create(ctx, rules):
    events = sample_bed(rules)
    bundle = build_transaction_bundle(events, ctx)
    validate_bundle(bundle)
    assert bundle["type"] == "transaction" and len(bundle["entry"]) == len(events)
    for event, entry in zip(events, bundle["entry"], strict=True):
        assert entry["request"] == {"method": "POST", "url": "Observation",
                                    "ifNoneExist": f"identifier=urn:devsync:event-id|{event.event_id}"}
        assert entry["fullUrl"] == bundle_full_url(event.event_id)
        assert entry["resource"]["identifier"][0]["value"] == event.event_id
    assert len({e["fullUrl"] for e in bundle["entry"]}) == len(events)


def test_bundle_is_deterministic_across_resends(ctx, rules):
    first = dumps(build_transaction_bundle(sample_bed(rules), ctx))
    again = dumps(build_transaction_bundle(sample_bed(rules), ctx))
    assert first == again
    assert orjson.loads(first)["entry"][0]["fullUrl"].startswith("urn:uuid:")


@pytest.mark.parametrize("event_id", ["0123456789abcdef0123456789abcdef", "é|x", ""])
def test_full_url_is_the_rfc4122_uuid5_of_the_event_id(event_id):
    assert bundle_full_url(event_id) == f"urn:uuid:{uuid.uuid5(BUNDLE_NAMESPACE, event_id)}"


def test_if_none_exist_encodes_unsafe_event_ids():
    assert if_none_exist("abc-123") == "identifier=urn:devsync:event-id|abc-123"
    assert if_none_exist("a&b=c d") == "identifier=urn:devsync:event-id|a%26b%3Dc%20d"


def test_patient_identifier_system_is_configurable(rules, event_factory):
    from hub.render.context import RenderContext

    ctx = RenderContext.from_rules(rules, patient_id_system="urn:oid:1.2.3.4")
    obs = observe(event_factory(patient=PatientBinding(patient_id="X1")), ctx)
    assert obs["subject"]["identifier"] == {"system": "urn:oid:1.2.3.4", "value": "X1"}
    assert "encounter" not in obs
