"""The library validation behind the renderer tests rejects broken output (so those tests can fail)."""

from __future__ import annotations

import pytest

from hub.render.fhir import build_observation, build_transaction_bundle
from hub.render.hl7v2 import build_oru_r01
from hub.render.pcd04 import build_oru_r40
from hub.render.samples import T0, sample_bed
from hub.render.validate import (
    InvalidOutputError,
    validate_bundle,
    validate_observation,
    validate_oru_r01,
    validate_oru_r40,
)


@pytest.fixture(scope="module")
def good(rules, ctx):
    return build_oru_r01(sample_bed(rules)[:3], ctx, control_id="C1", message_time=T0)


def mutate(message: str, segment_prefix: str, index: int, value: str) -> str:
    """Replace field `index` of the first segment starting with `segment_prefix`."""
    lines = message.split("\r")
    for n, line in enumerate(lines):
        if line.startswith(segment_prefix):
            fields = line.split("|")
            fields += [""] * (index + 1 - len(fields))
            fields[index] = value
            lines[n] = "|".join(fields)
            return "\r".join(lines)
    raise AssertionError(segment_prefix)


def test_good_message_passes(good):
    validate_oru_r01(good)


@pytest.mark.parametrize(
    ("segment", "index", "value", "error"),
    [
        ("OBX|4|", 14, "2025-11-21 04:40", "hl7apy strict parse failed"),
        ("OBX|4|", 5, "seventy", "not an HL7 NM"),
        ("OBX|4|", 5, "1e5", "not an HL7 NM"),
        ("OBX|4|", 2, "XX", "not in table HL70125"),
        ("OBX|4|", 11, "Q", "not in table HL70085"),
        ("OBX|4|", 4, "1.1.1", "is not <MDS>.<VMD>.<CHAN>.<METRIC>"),
        ("OBX|4|", 4, "1.0.0.0", "dictionary order"),
        ("OBX|1|", 5, "12", "OBX-5 has a value but OBX-2 is empty"),
        ("OBX|4|", 8, "ZZ", "not in table HL70078"),
        ("MSH|", 8, "ORU^R40^ORU_R40", "MSH-9"),
    ],
)
def test_broken_oru_r01_is_rejected(good, segment, index, value, error):
    # MSH fields are numbered one lower in the split list (MSH-1 is the separator itself)
    broken = mutate(good, segment, index, value)
    with pytest.raises(InvalidOutputError, match=error):
        validate_oru_r01(broken)


def test_metric_without_its_vmd_row_is_rejected(good):
    broken = "\r".join(line for line in good.split("\r") if not line.startswith("OBX|2|"))
    with pytest.raises(InvalidOutputError, match="OBX-4 1.1.1.0 has no VMD row before it"):
        validate_oru_r01(broken)


def test_unescaped_delimiter_in_text_is_rejected(good):
    broken = mutate(good, "OBX|4|", 2, "ST")
    broken = mutate(broken, "OBX|4|", 5, "a^b")
    with pytest.raises(InvalidOutputError, match="unescaped"):
        validate_oru_r01(broken)


def test_missing_order_and_framing_errors_are_rejected(good):
    without_obr = "\r".join(line for line in good.split("\r") if not line.startswith("OBR"))
    with pytest.raises(InvalidOutputError, match="ORDER_OBSERVATION|hl7apy"):
        validate_oru_r01(without_obr)
    with pytest.raises(InvalidOutputError, match="trailing CR"):
        validate_oru_r01(good + "\r")
    with pytest.raises(InvalidOutputError, match="CR only"):
        validate_oru_r01(good.replace("\r", "\n"))


def test_broken_oru_r40_is_rejected(ctx, alarm_factory):
    good = build_oru_r40(alarm_factory(), ctx, control_id="A1", message_time=T0)
    validate_oru_r40(good)
    with pytest.raises(InvalidOutputError, match="OBX-11 must be F"):
        validate_oru_r40(mutate(good, "OBX|3|", 11, "R"))
    with pytest.raises(InvalidOutputError, match="expected MSH PID PV1 OBR OBX"):
        validate_oru_r40("\r".join(line for line in good.split("\r") if not line.startswith("PV1")))
    with pytest.raises(InvalidOutputError, match="hl7apy"):
        validate_oru_r40(mutate(good, "OBR|", 7, "yesterday"))


def test_broken_fhir_is_rejected(ctx, rules, event_factory):
    obs = build_observation(event_factory(), ctx)
    with pytest.raises(InvalidOutputError, match="status 'done'"):
        validate_observation({**obs, "status": "done"})
    with pytest.raises(InvalidOutputError, match="fhir.resources rejected"):
        validate_observation({**obs, "effectiveDateTime": "21/11/2025"})
    with pytest.raises(InvalidOutputError, match="fhir.resources rejected"):
        validate_observation({k: v for k, v in obs.items() if k != "code"})
    bundle = build_transaction_bundle(sample_bed(rules)[:2], ctx)
    with pytest.raises(InvalidOutputError, match="Bundle.type"):
        validate_bundle({**bundle, "type": "batch"})
    entry = {**bundle["entry"][0], "request": {"method": "PUT", "url": "Observation"}}
    with pytest.raises(InvalidOutputError, match="POST Observation"):
        validate_bundle({**bundle, "entry": [entry]})
