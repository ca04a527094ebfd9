"""Pure parts of the sinks: routing, unit conversion per sink, the charting policy."""

from __future__ import annotations

import pytest

from hub.errors import RuleError
from hub.events import DataClass, Quality
from hub.rules.sinks import ChartingPolicy
from hub.sinks.charting import ChartingGate, LastCharted, decide_charting
from hub.sinks.router import SinkRoutes, apply_route, match_route
from tests.support.sink_events import T0, alarm, rules_with, vital

KPA = [{"from": "mm[Hg]", "to": "kPa", "scale": 0.133322, "offset": 0}]


def routes(routing, conversions=None, sink="ehr"):
    return SinkRoutes.from_rules(rules_with(routing=routing, conversions=conversions), sink)


@pytest.mark.parametrize("route, event, routed", [
    ({"sink": "ehr", "data_classes": ["vital"]}, vital(), True),
    ({"sink": "ehr", "data_classes": ["alarm"]}, vital(), False),
    ({"sink": "ehr", "data_classes": ["vital"], "patients": ["MRN0002"]}, vital("MRN0001"), False),
    ({"sink": "ehr", "data_classes": ["vital"], "patients": ["MRN0002"]}, vital("MRN0002"), True),
    ({"sink": "ehr", "data_classes": ["vital"], "locations": ["ICU1-BED03"]}, vital("MRN0003"), True),
    ({"sink": "ehr", "data_classes": ["vital"], "locations": ["ICU2"]}, vital("MRN0003"), False),
    ({"sink": "ehr", "data_classes": ["vital"], "metrics": ["spo2"]}, vital(metric="heart-rate"), False),
    ({"sink": "other", "data_classes": ["vital"]}, vital(), False),
])
def test_route_matches_on_class_patient_location_and_metric(route, event, routed):
    assert (match_route(routes([route]), event) is not None) is routed


def test_route_converts_to_the_sinks_unit():
    table = routes([{"sink": "ehr", "data_classes": ["vital"], "units": {"bp-systolic": "kPa"}}], KPA)
    event = vital(metric="bp-systolic", value=120.0)
    routed = apply_route(table, *match_route(table, event), event)
    assert routed.unit == "kPa" and routed.value == pytest.approx(15.99864)
    assert event.value == 120.0 and event.unit == "mm[Hg]"  # the original is untouched


def test_route_without_conversion_names_route_metric_and_units():
    table = routes([{"sink": "ehr", "data_classes": ["vital"], "units": {"bp-systolic": "kPa"}}], [])
    event = vital(metric="bp-systolic", value=120.0)
    with pytest.raises(RuleError, match=r"routing\[0\]\.units\.bp-systolic: no conversion from 'mm\[Hg\]' to 'kPa'"):
        apply_route(table, *match_route(table, event), event)


def test_route_code_representation():
    table = routes([{"sink": "ehr", "data_classes": ["vital"], "codes": "mdc"}])
    event = vital()
    assert apply_route(table, *match_route(table, event), event).loinc is None
    assert event.loinc == "8867-4"


POLICY = ChartingPolicy(sink="ehr", data_classes=[DataClass.VITAL], interval_s=300, change_threshold=15)


@pytest.mark.parametrize("last, event, alarm_pending, chart, reason", [
    (None, vital(t=T0), False, True, "first value"),
    (LastCharted(T0, 80), vital(value=82, t=T0 + 10), False, False, "charting interval"),
    (LastCharted(T0, 80), vital(value=82, t=T0 + 300), False, True, "interval of 300 s elapsed"),
    (LastCharted(T0, 80), vital(value=96, t=T0 + 10), False, True, "changed by 16"),
    (LastCharted(T0, 80), vital(value=80, t=T0 + 10), True, True, "alarm"),
    (None, vital(t=T0, quality=frozenset({Quality.INVALID})), False, False, "not valid (invalid)"),
])
def test_decide_charting(last, event, alarm_pending, chart, reason):
    decision = decide_charting(POLICY, last, event, alarm_pending)
    assert decision.chart is chart and reason in decision.reason


def test_charting_gate_charts_after_an_alarm_on_the_metric_only():
    gate = ChartingGate([POLICY])
    assert gate.decide(vital(metric="spo2", value=97, t=T0)).chart
    assert gate.decide(vital(metric="heart-rate", value=80, t=T0)).chart
    assert not gate.decide(vital(metric="spo2", value=97, t=T0 + 1)).chart
    gate.observe(alarm("MRN0001", source_metric="spo2", t=T0 + 1.5))
    assert gate.decide(vital(metric="spo2", value=97, t=T0 + 2)).reason == "alarm on this metric"
    assert not gate.decide(vital(metric="spo2", value=97, t=T0 + 3)).chart  # once per alarm
    assert not gate.decide(vital(metric="heart-rate", value=80, t=T0 + 3)).chart  # other metric: no


def test_charting_gate_keeps_patients_apart():
    gate = ChartingGate([POLICY])
    assert gate.decide(vital("MRN0001", t=T0)).chart
    assert gate.decide(vital("MRN0002", t=T0 + 1)).chart
    assert not gate.decide(vital("MRN0001", t=T0 + 2)).chart


def test_no_policy_charts_everything():
    gate = ChartingGate([POLICY])
    event = vital(data_class=DataClass.SETTING)
    assert gate.decide(event).chart and gate.decide(event).chart
