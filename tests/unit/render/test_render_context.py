"""RenderContext lookups built from the default rules."""

from __future__ import annotations

import pytest

from hub.errors import RuleError
from hub.events import Device
from hub.render.context import EUI64_SYSTEM, RenderContext, normalise_eui64
from hub.render.mdc import MdcTerm, parse_term


def test_from_rules_knows_every_metric_of_the_code_map(ctx, rules):
    assert set(ctx.metrics) == {c.metric for c in rules.codes}
    assert ctx.metric("spo2").loinc == "59408-5"


@pytest.mark.parametrize(
    ("code_sent", "system", "expected"),
    [
        ("150017", "MDC", MdcTerm(150017, "MDC_PRESS_BLD_ART_SYS")),
        ("MDC_PRESS_BLD_NONINV_SYS", "MDC", MdcTerm(150021, "MDC_PRESS_BLD_NONINV_SYS")),
        ("150021^MDC_PRESS_BLD_NONINV_SYS", "urn:iso:std:iso:11073:10101", MdcTerm(150021, "MDC_PRESS_BLD_NONINV_SYS")),
    ],
)
def test_metric_term_is_the_mdc_code_actually_sent(ctx, event_factory, code_sent, system, expected):
    event = event_factory(device_id="ART-01", metric="bp-systolic", value=120, code_sent=code_sent,
                          code_system_sent=system)
    assert ctx.metric_term(event) == expected


def test_vendor_code_from_an_arterial_line_gets_the_invasive_term(ctx, event_factory):
    art = event_factory(device_id="ART-01", metric="bp-systolic", code_sent="ABP_S", code_system_sent="ACME")
    cuff = event_factory(device_id="NIBP-01", metric="bp-systolic", code_sent="NBP_S", code_system_sent="ACME")
    monitor = event_factory(device_id="MON-01", metric="bp-systolic", code_sent="BP_S", code_system_sent="ACME")
    assert ctx.metric_term(art) == MdcTerm(150017, "MDC_PRESS_BLD_ART_SYS")
    assert ctx.metric_term(cuff) == MdcTerm(150021, "MDC_PRESS_BLD_NONINV_SYS")
    assert ctx.metric_term(monitor) == MdcTerm(150033, "MDC_PRESS_BLD_SYS")


def test_unknown_metric_is_a_rule_error_that_says_what_is_known(ctx, event_factory):
    event = event_factory(metric="heart-rate", code_sent="XYZ", code_system_sent="ACME").with_changes(
        metric="cardiac-output", mdc_code=None)
    with pytest.raises(RuleError, match="no MDC code for metric 'cardiac-output'.*known metrics: .*heart-rate"):
        ctx.metric_term(event)


def test_unit_term_depends_on_the_metric_for_per_minute(ctx):
    assert ctx.unit_term(ctx.metric("heart-rate"), "/min") == MdcTerm(264864, "MDC_DIM_BEAT_PER_MIN")
    assert ctx.unit_term(ctx.metric("respiratory-rate"), "/min") == MdcTerm(264928, "MDC_DIM_RESP_PER_MIN")
    assert ctx.unit_term(None, "/min") is None
    assert ctx.unit_term(None, "mm[Hg]") == MdcTerm(266016, "MDC_DIM_MMHG")
    assert ctx.unit_term(ctx.metric("bp-systolic"), "kPa") is None


def test_reference_range_is_converted_to_the_sink_unit(ctx):
    assert ctx.reference_range(ctx.metric("bp-systolic"), "mm[Hg]") == (0, 300)
    low, high = ctx.reference_range(ctx.metric("bp-systolic"), "kPa")
    assert low == 0 and high == pytest.approx(40.0, rel=1e-3)
    assert ctx.reference_range(ctx.metric("bp-systolic"), "ms") is None
    assert ctx.reference_range(ctx.metric("infusion-rate"), "mL/h") is None


def test_device_info_uses_the_eui64_from_the_inventory(ctx):
    info = ctx.device_info(Device(id="MON-02", type="multi-parameter-monitor"))
    assert info.eui64 == "0600DC7500020005"
    assert info.equipment_id == "0600DC7500020005^^0600DC7500020005^EUI-64"
    assert info.identifier == {"system": EUI64_SYSTEM, "value": "0600DC7500020005"}
    assert info.mds == MdcTerm(69965, "MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS")


def test_device_without_eui64_is_named_by_its_id(ctx):
    info = ctx.device_info(Device(id="BED|7^X", type="infusion-pump"))
    assert info.equipment_id == "BED\\F\\7\\S\\X^DEVSYNC"
    assert info.identifier == {"system": "urn:devsync:device-id", "value": "BED|7^X"}
    assert info.mds == MdcTerm(69985, "MDC_DEV_PUMP_INFUS_MDS")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("06:00:dc:75:00:01:00:01", "0600DC7500010001"), ("0600-DC75-0001-0001", "0600DC7500010001"),
     ("0600dc750001", None), ("zz00dc7500010001", None), (None, None)],
)
def test_normalise_eui64(text, expected):
    assert normalise_eui64(text) == expected


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"result_status": "P"}, "result_status 'P' is not one of R, F"),
        ({"hub_eui64": "not-an-eui"}, "hub_eui64 'not-an-eui' is not an EUI-64"),
        ({"sending_application": ""}, "sending_application must not be empty"),
        ({"sending_facility": "A|B"}, "sending_facility 'A|B' must be at most 20 characters without HL7 delimiters"),
        ({"receiving_application": "X" * 21}, "receiving_application 'X{21}' must be at most 20"),
    ],
)
def test_bad_settings_are_rule_errors(rules, settings, message):
    with pytest.raises(RuleError, match=message):
        RenderContext.from_rules(rules, **settings)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("150456", MdcTerm(150456, "MDC_PULS_OXIM_SAT_O2")), ("196670^MDC_EVT_LO", MdcTerm(196670, "MDC_EVT_LO")),
     ("MDC_EVT_HI", MdcTerm(196648, "MDC_EVT_HI")), ("999999", MdcTerm(999999, "")), ("HR", None), ("", None)],
)
def test_parse_term(text, expected):
    assert parse_term(text) == expected


def test_measure_render_rates_reports_every_figure(rules):
    from hub.render import measure_render_rates

    rates = measure_render_rates(50, rules=rules)
    assert set(rates) == {"hl7v2_render_msgs_per_s", "hl7v2_render_obs_per_s", "fhir_render_resources_per_s",
                          "fhir_bundle_render_resources_per_s", "pcd04_render_msgs_per_s"}
    assert all(value > 0 for value in rates.values())
    assert rates["hl7v2_render_obs_per_s"] == 10 * rates["hl7v2_render_msgs_per_s"]
