"""FHIR SampledData Observations for ECG strips, against the HL7 PoCD example and fhir.resources."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from hub.errors import RuleError
from hub.render.sampled_data import (
    LeadSeries,
    Strip,
    build_sampled_data_observation,
    lead_potential_term,
    mdc_lead_ref,
    parse_sampled_data,
)
from hub.render.validate import validate_observation

EXAMPLE = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "fhir" / \
    "Observation-ECGSampleArrayObservation.xml"
NS = {"f": "http://hl7.org/fhir"}


@pytest.mark.parametrize(("lead", "code", "ref"), [
    ("I", 131329, "MDC_ECG_ELEC_POTL_I"), ("II", 131330, "MDC_ECG_ELEC_POTL_II"),
    ("III", 131389, "MDC_ECG_ELEC_POTL_III"), ("aVR", 131390, "MDC_ECG_ELEC_POTL_AVR"),
    ("aVF", 131392, "MDC_ECG_ELEC_POTL_AVF"), ("V1", 131331, "MDC_ECG_ELEC_POTL_V1"),
    ("V6", 131336, "MDC_ECG_ELEC_POTL_V6"), ("MDC_ECG_LEAD_V2", 131332, "MDC_ECG_ELEC_POTL_V2"),
    ("MLII", 131330, "MDC_ECG_ELEC_POTL_II"), ("Lead II (Einthoven)", 131330, "MDC_ECG_ELEC_POTL_II"),
    ("PLETH", 131328, "MDC_ECG_ELEC_POTL"),
])
def test_lead_codes(lead, code, ref):
    assert lead_potential_term(lead) == (code, ref)


def test_mdc_lead_names():
    assert [mdc_lead_ref(x) for x in ("II", "aVL", "v5", "MLII", "odd")] == [
        "MDC_ECG_LEAD_II", "MDC_ECG_LEAD_AVL", "MDC_ECG_LEAD_V5", "MDC_ECG_LEAD_II", "odd"]


def example_components() -> list[dict]:
    root = etree.parse(str(EXAMPLE)).getroot()
    out = []
    for comp in root.findall("f:component", NS):
        sd = comp.find("f:valueSampledData", NS)
        out.append({
            "code": comp.find("f:code/f:coding/f:code", NS).get("value"),
            "display": comp.find("f:code/f:coding/f:display", NS).get("value"),
            "origin": float(sd.find("f:origin/f:value", NS).get("value")),
            "unit": sd.find("f:origin/f:code", NS).get("value"),
            "period": float(sd.find("f:period", NS).get("value")),
            "factor": float(sd.find("f:factor", NS).get("value")),
            "data": sd.find("f:data", NS).get("value"),
        })
    return out


def test_the_pocd_example_rebuilt_from_its_samples_gives_the_same_components():
    """Leads I, II, III of the HL7 example: 125 Hz (period 8 ms), factor 0.001 mV, origin -0.5 mV."""
    expected = example_components()
    names = ["I", "II", "III"]
    leads = tuple(LeadSeries(n, [int(v) for v in c["data"].split()], factor=c["factor"],
                             baseline=-c["origin"] / c["factor"], unit="mV") for n, c in zip(names, expected))
    strip = Strip("ex", "SomePatient", 125.0, 1625823203.0, leads)
    obs = build_sampled_data_observation(strip)
    validate_observation(obs)
    assert obs["code"]["coding"][0]["code"] == "131328"
    for built, want in zip(obs["component"], expected, strict=True):
        sd = built["valueSampledData"]
        assert built["code"]["coding"][0]["code"] == want["code"]
        assert built["code"]["coding"][0]["display"] == want["display"]
        assert (sd["origin"]["value"], sd["origin"]["code"], sd["period"], sd["factor"], sd["data"]) == (
            pytest.approx(want["origin"]), want["unit"], want["period"], want["factor"], want["data"])
        assert sd["dimensions"] == 1


def test_a_partial_record_with_lost_samples_is_valid_and_says_so():
    strip = Strip("p1", "PAT-1", 500.0, 1.7e9, (LeadSeries("II", [10, None, 30], 2.5, 0, "uV"),),
                  device_id="ECG-1", encounter_id="ENC-1", partial=True, alarm="asystole: 4.2 s")
    obs = build_sampled_data_observation(strip)
    validate_observation(obs)
    assert obs["status"] == "preliminary"
    assert obs["meta"]["tag"] == [{"system": "urn:devsync:ecg", "code": "partial-record"}]
    assert obs["note"][0]["text"] == "partial record sent on alarm: asystole: 4.2 s"
    sd = obs["component"][0]["valueSampledData"]
    assert sd["data"] == "10 E 30" and sd["period"] == 2
    assert parse_sampled_data(sd) == [25.0, None, 75.0]
    assert obs["effectivePeriod"] == {"start": "2023-11-14T22:13:20.000+00:00", "end": "2023-11-14T22:13:20.004+00:00"}


def test_leads_of_different_length_are_refused():
    strip = Strip("x", "P", 500.0, 0.0, (LeadSeries("I", [1, 2]), LeadSeries("II", [1])))
    with pytest.raises(RuleError, match="leads differ in length"):
        build_sampled_data_observation(strip)
