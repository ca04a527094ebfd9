"""Property tests: parse(build(x)) recovers x.

For generated events (values of any magnitude and sign, names, ids, locations and texts with HL7
delimiters, escape and control characters), the ORU^R01 parsed back with python-hl7 (and unescaped)
gives the patient id, name, location, encounter, control id, and for every observation its MDC code,
value, UCUM unit, time and equipment id; the FHIR Observation gives code, value, unit, time and the
event id. Every generated message and resource is also validated by hl7apy (strict) / fhir.resources.
"""

from __future__ import annotations

import calendar
import math
import re
from functools import partial
from pathlib import Path

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from render_helpers import field, segments

from hub.events import PatientBinding
from hub.render.context import RenderContext
from hub.render.fhir import build_observation, dumps
from hub.render.hl7v2 import build_oru_r01
from hub.render.samples import T0, sample_event
from hub.render.validate import validate_observation, validate_oru_r01
from hub.rules.load import load_rules

RULES = load_rules(Path(__file__).resolve().parents[3] / "rules")
CTX = RenderContext.from_rules(RULES)
make_event = partial(sample_event, RULES)

# (device, metric, MDC code sent): ward devices from rules/ward.yaml.
COMBOS = [
    ("MON-01", "heart-rate", None), ("MON-01", "spo2", None), ("MON-01", "respiratory-rate", None),
    ("MON-01", "temperature", None), ("ART-01", "bp-systolic", "150017"), ("ART-01", "bp-mean", "150019"),
    ("NIBP-01", "bp-diastolic", "150022"), ("OXI-02", "heart-rate", "149530"), ("PUMP-01", "infusion-rate", None),
    ("VENT-03", "peep", None),
]
UNITS = {"bp-systolic": ["mm[Hg]", "kPa"], "bp-mean": ["mm[Hg]", "kPa"], "bp-diastolic": ["mm[Hg]", "kPa"],
         "temperature": ["Cel", "[degF]"]}
text_st = st.text(min_size=1, max_size=40)
id_st = st.text(min_size=1, max_size=20).filter(lambda s: s.strip())  # identifiers are never blank
delimited_st = st.text(alphabet=st.sampled_from("|^~&\\ \r\nAZaz09é中\x0b\x1c"), min_size=1, max_size=20)
value_st = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
time_st = st.floats(min_value=T0 - 10 * 365 * 86400, max_value=T0 + 10 * 365 * 86400)
name_st = st.text(alphabet=st.characters(blacklist_characters="^,", blacklist_categories=("Cs", "Zs", "Cc")),
                  min_size=1, max_size=20)


@st.composite
def observations(draw):
    """(events, patient) for one patient: 1-6 numeric events and maybe one text event."""
    patient = PatientBinding(patient_id=draw(st.one_of(id_st, delimited_st.filter(str.strip))),
                             encounter_id=draw(st.one_of(st.none(), id_st, delimited_st.filter(str.strip))),
                             location=draw(st.one_of(st.none(), delimited_st)),
                             patient_name=draw(st.one_of(st.none(), name_st)))
    specs = draw(st.lists(st.tuples(st.sampled_from(COMBOS), value_st, time_st), min_size=1, max_size=6))
    events = []
    for index, ((device, metric, code), value, t) in enumerate(specs):
        unit = draw(st.sampled_from(UNITS.get(metric, [None])))
        events.append({"device_id": device, "metric": metric, "code_sent": code, "value": value, "unit": unit,
                       "t": t, "patient": patient, "seq": index})
    text = draw(st.one_of(st.none(), text_st, delimited_st))
    if text is not None:
        events.append({"device_id": "MON-01", "metric": "ecg-rhythm", "text": text, "t": T0, "patient": patient,
                       "seq": len(events)})
    return events, patient


def close(recovered: float, value: float) -> bool:
    return abs(recovered - value) <= 1e-13 + 1e-12 * abs(value)


def parse_hl7_time(text: str) -> float:
    match = re.fullmatch(r"(\d{14})\.(\d{4})\+0000", text)
    assert match, text
    stamp = match.group(1)
    parts = (int(stamp[0:4]), int(stamp[4:6]), int(stamp[6:8]), int(stamp[8:10]), int(stamp[10:12]),
             int(stamp[12:14]))
    return calendar.timegm(parts) + int(match.group(2)) / 10000


@settings(max_examples=40, deadline=None, database=None)
@given(case=observations(), control_id=delimited_st.filter(str.strip))
def test_hl7v2_round_trip(case, control_id):
    ctx = CTX
    specs, patient = case
    events = [make_event(**spec) for spec in specs]
    message = build_oru_r01(events, ctx, control_id=control_id, message_time=T0)
    validate_oru_r01(message)  # hl7apy strict + python-hl7, every generated message
    assert field(segments(message, "MSH")[0], 10) == control_id
    pid = segments(message, "PID")[0]
    assert field(pid, 3, 1) == patient.patient_id
    assert field(pid, 5, 1) == (patient.patient_name.strip() if patient.patient_name else "")
    pv1 = segments(message, "PV1")[0]
    assert (field(pv1, 3, 1) or field(pv1, 3, 9)) == (patient.location or ctx.location_of(events[0]))
    assert field(pv1, 19) == (patient.encounter_id or "")
    rows = [s for s in segments(message, "OBX") if not field(s, 4).endswith(".0")]
    assert len(rows) == len(events)
    expected = sorted((ctx.metric_term(e).code, e.effective_time) for e in events)
    got = sorted((int(field(r, 3, 1)), parse_hl7_time(field(r, 14))) for r in rows)
    assert [c for c, _ in got] == [c for c, _ in expected]
    assert all(abs(g - e) <= 0.00005 + 1e-6 for (_, g), (_, e) in zip(got, expected, strict=True))
    remaining = list(events)
    for row in rows:
        event = next(e for e in remaining if ctx.metric_term(e).code == int(field(row, 3, 1))
                     and _matches(row, e, ctx))
        remaining.remove(event)
        assert field(row, 18) == ctx.device_info(event.device).equipment_id
    assert not remaining


def _matches(row, event, ctx) -> bool:
    if event.text is not None:
        term = ctx.term_for_text(event.text)
        return field(row, 5) == (f"{term.code}^{term.ref}^MDC" if term else event.text)
    recovered = field(row, 5)
    return recovered != "" and close(float(recovered), event.value) and ucum_unit(row) == event.unit


def ucum_unit(row) -> str | None:
    """OBX-6 as MDC^...^MDC^ucum^ucum^UCUM or ucum^ucum^UCUM."""
    if field(row, 6, 6) == "UCUM":
        return field(row, 6, 4)
    return field(row, 6, 1) if field(row, 6, 3) == "UCUM" else None


@settings(max_examples=100, deadline=None, database=None)
@given(case=observations())
def test_fhir_round_trip(case):
    ctx = CTX
    specs, patient = case
    for spec in specs:
        event = make_event(**spec)
        obs = orjson.loads(dumps(build_observation(event, ctx)))
        validate_observation(obs)
        assert obs["identifier"][0]["value"] == event.event_id
        assert obs["subject"]["identifier"]["value"] == patient.patient_id
        mdc = next(c for c in obs["code"]["coding"] if c["system"] == "urn:iso:std:iso:11073:10101")
        assert int(mdc["code"]) == ctx.metric_term(event).code
        assert abs(_iso_seconds(obs["effectiveDateTime"]) - event.effective_time) <= 0.0005 + 1e-6
        if event.text is None:
            assert obs["valueQuantity"]["value"] == event.value
            assert obs["valueQuantity"]["code"] == event.unit
        elif "valueString" in obs:
            assert obs["valueString"] == event.text
        else:
            assert obs.get("valueCodeableConcept", {}).get("text") == event.text or not event.text.strip()


def _iso_seconds(text: str) -> float:
    match = re.fullmatch(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{3})\+00:00", text)
    assert match, text
    y, mo, d, h, mi, s, ms = (int(g) for g in match.groups())
    return calendar.timegm((y, mo, d, h, mi, s)) + ms / 1000


def test_close_is_strict_enough():
    assert not close(1.0, 1.0 + 1e-9)
    assert math.isclose(1.0, 1.0)
