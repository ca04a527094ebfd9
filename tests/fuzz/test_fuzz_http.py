"""Fuzz the HTTP ingest decoding (connectors/http.py: events_from_body, observations_from_body).

Inputs: any JSON value (what aiohttp's json() can return), and valid observation bodies with fields
replaced by random JSON. Property: events or a DecodeError naming the field path, nothing else.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from fuzz_mutations import EXAMPLES, assert_clear, budget, mutated
from hypothesis import given
from hypothesis import strategies as st

from connectors.hl7.inventory import DeviceDirectory
from connectors.http import events_from_body, observations_from_body
from hub.errors import DecodeError
from hub.rules.load import load_rules

pytestmark = pytest.mark.timeout(900)
ROOT = Path(__file__).resolve().parents[2]
DIRECTORY = DeviceDirectory(load_rules(ROOT / "rules"))
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=25,
)
GOOD_OBSERVATION = {"code": "150456", "system": "MDC", "value": 97.0, "unit": "%",
                    "time": "2026-11-21T10:00:00Z", "quality": []}
FIELDS = ["code", "system", "value", "unit", "time", "quality", "data_class", "extra"]
OBSERVATION = st.builds(lambda changes: {**GOOD_OBSERVATION, **changes},
                        st.dictionaries(st.sampled_from(FIELDS), JSON | st.sampled_from(
                            ["2026-11-21T10:00:00", "not a time", "1e400", "MDC_PULS_RATE", "manual", "valid",
                             "99999999999999999999", "-5", "", "\x00"]), max_size=3))
GOOD_BODIES = [orjson.dumps({"observations": [GOOD_OBSERVATION]}), orjson.dumps([GOOD_OBSERVATION] * 2)]


def check(body) -> None:
    for decode in (lambda b: events_from_body(b, 50),
                   lambda b: observations_from_body(b, "MON-ICU1-01", DIRECTORY, received_time=1.8e9,
                                                    default_system="MDC", max_items=50)):
        try:
            decode(body)
        except DecodeError as exc:
            assert_clear(str(exc))
            assert exc.field, f"rejection names no field: {exc}"


@budget(EXAMPLES)
@given(body=JSON)
def test_any_json_decodes_or_names_the_field(body):
    check(body)


@budget(EXAMPLES)
@given(body=st.lists(OBSERVATION, min_size=1, max_size=4) | st.builds(lambda o: {"observations": o},
                                                                      st.lists(OBSERVATION, max_size=4)))
def test_near_valid_observations_decode_or_name_the_field(body):
    check(body)


@budget(EXAMPLES // 3)
@given(raw=mutated(GOOD_BODIES))
def test_mutated_json_bytes_decode_or_name_the_field(raw):
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return  # the server answers 400 'body is not JSON' before decoding
    check(body)
