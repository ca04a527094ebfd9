"""Pydantic errors -> messages that name what is accepted; cross-section consistency checks."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from hub.rules.base import RuleModel
from hub.rules.errors import RuleFileError
from hub.rules.load import load_rule_sources
from hub.rules.messages import type_text, validation_problems
from hub.rules.profiles import SyncProfile

TYPES = """\
device_types:
  - {name: monitor, protocol: hl7v2-mllp, sync_mode: push, criticality: high, data_classes: [vital], source: monitor}
"""
HR = "  - {metric: heart-rate, display: HR, mdc_code: 147842, mdc_ref: MDC_ECG_CARD_BEAT_RATE, unit: /min"


class Listener(RuleModel):
    port: int


class Holder(RuleModel):
    """A model with real unions (the shipped sections have none yet; other teams may add them)."""

    target: int | str | None = None
    listen: Listener | list[int] | None = None


def union_problems(data: dict) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        Holder.model_validate(data)
    return [str(p) for p in validation_problems(caught.value, Holder, "h.yaml", {("listen",): 3, ("target",): 2})]


def test_union_type_mismatch_is_one_problem_naming_every_form():
    assert union_problems({"target": [1]}) == [
        "h.yaml:2: target: expected a whole number or text or null, got a list [1]"]


def test_union_branch_that_got_past_the_type_check_explains_itself():
    assert union_problems({"listen": {"prt": 1}}) == [
        "h.yaml:3: listen: read as Listener: port: required key 'port' is missing (expected a whole number); "
        "prt: unknown key 'prt' (known: port)"]
    assert union_problems({"listen": ["a"]}) == [
        "h.yaml:3: listen: read as list[int]: [0]: expected a whole number, got 'a'"]
    assert union_problems({"listen": "a"}) == [
        "h.yaml:3: listen: expected a mapping (keys: port) or a list of whole numbers or null, got 'a'"]


@pytest.mark.parametrize(("tp", "text"), [
    (int | None, "a whole number or null"),
    (list[str], "a list of text"),
    (tuple[float, float] | None, "[number, number] or null"),
    (dict[str, float], "a mapping of text to a number"),
    (SyncProfile, "a mapping (keys: latency_budget_s, reorder_window_s, reorder_max_events, "
                  "dedupe_window_events, staleness_limit_s, staleness_action, ...)"),
])
def test_type_text(tp, text):
    assert type_text(tp) == text


def problems(text: str) -> list[str]:
    with pytest.raises(RuleFileError) as caught:
        load_rule_sources([("r.yaml", text)])
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize(("text", "expected"), [
    ("codes:\n" + HR + "}\n" + HR.replace("heart-rate", "pulse").replace("MDC_ECG", "X") + "}\n",
     "r.yaml:3: codes[1].mdc_code: MDC code '147842' already means metric 'heart-rate' (at r.yaml:2); "
     "a code may map to one metric only"),
    ("codes:\n" + HR + ", aliases: [{system: ACME, code: HR}]}\n"
     "  - {metric: pulse, display: P, mdc_code: 149530, mdc_ref: MDC_PULS_OXIM_PULS_RATE, unit: /min,\n"
     "     aliases: [{system: ACME, code: HR}]}\n",
     "r.yaml:4: codes[1].aliases[0]: ACME code 'HR' already means metric 'heart-rate' (at r.yaml:2); "
     "a code may map to one metric only"),
    ("units:\n  aliases:\n    - {sent: mmHg, ucum: 'mm[Hg]'}\n    - {sent: mmHg, ucum: kPa}\n",
     "r.yaml:4: units.aliases[1].sent: unit 'mmHg' already maps to 'mm[Hg]' (at r.yaml:3)"),
    ("units:\n  conversions:\n    - {from: a, to: b, scale: 2}\n    - {from: a, to: b, scale: 3}\n",
     "r.yaml:4: units.conversions[1]: conversion a -> b defined twice (first at r.yaml:3)"),
    ("sync_profiles:\n  vital:\n    latency_budget_s: 2\n    reorder_window_s: 5\n",
     "r.yaml:4: sync_profiles.vital.reorder_window_s: reorder window 5 s is longer than latency_budget_s 2 s "
     "(every held event would miss its budget)"),
    ("sync_profiles:\n  setting: {latency_budget_s: 30, poll_interval_s: 60, staleness_limit_s: 30}\n",
     "r.yaml:2: sync_profiles.setting.staleness_limit_s: staleness limit 30 s is shorter than poll_interval_s 60 s "
     "(every polled value would turn stale)"),
    ("association:\n  static_bindings:\n    - {location: B1, patient_id: P1}\n    - {location: B1, patient_id: P2}\n",
     "r.yaml:4: association.static_bindings[1].location: location 'B1' is bound twice (first at r.yaml:3)"),
    (TYPES + "precedence:\n  - {metric: alarm, policy: most-severe, rank: [monitor, monitor]}\n",
     "r.yaml:4: precedence[0].rank[1]: source 'monitor' is ranked twice"),
    ("precedence:\n  - metric: alarm\n    policy: most-severe\n    fallback: source-rank\n",
     "r.yaml:4: precedence[0].fallback: source-rank needs a non-empty rank list (sources best first)"),
    ("units:\n  conversions:\n    - {from: a, to: b, scale: 0}\n",
     "r.yaml:3: units.conversions[0].scale: scale must not be 0 (to = from * scale + offset)"),
    (TYPES + "devices:\n  - {id: A, type: monitor}\n  - {id: A, type: monitor}\n",
     "r.yaml:5: devices[1].id: duplicate id 'A' (first at r.yaml:4)"),
    ("devices:\n  - {id: A, type: monitor}\n  - {id: B, type: monitor}\n",
     "r.yaml:2: devices[0].type: unknown device type 'monitor': no device_types are defined in the loaded files "
     "(check the whole rule folder, e.g. devsync rules check rules/)"),
])
def test_consistency(text, expected):
    assert problems(text) == [expected]
