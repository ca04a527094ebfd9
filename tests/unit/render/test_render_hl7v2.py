"""build_oru_r01: IHE PCD-01 ORU^R01; every message here is validated by hl7apy (strict) and python-hl7."""

from __future__ import annotations

import random

import pytest
from render_helpers import field, segments

from hub.errors import HubError, RuleError
from hub.events import DataClass, PatientBinding, Quality
from hub.render.context import RenderContext
from hub.render.hl7v2 import build_oru_r01
from hub.render.samples import T0, sample_bed
from hub.render.validate import validate_oru_r01

T_TEXT = "20251121044000.0000+0000"  # hl7_time(T0)


def render(events, ctx, control_id="HUB0001", message_time=T0 + 2):
    message = build_oru_r01(events, ctx, control_id=control_id, message_time=message_time)
    validate_oru_r01(message)
    return message


def metric_rows(message):
    return [s for s in segments(message, "OBX") if not field(s, 4).endswith(".0")]


def row_for(message, code: int):
    rows = [s for s in metric_rows(message) if field(s, 3, 1) == str(code)]
    assert len(rows) == 1, f"expected one OBX with code {code}"
    return rows[0]


@pytest.fixture
def bed(rules):
    return sample_bed(rules)


def test_header_segments_follow_ihe_pcd01(ctx, bed):
    message = render(bed, ctx)
    msh = segments(message, "MSH")[0]
    assert field(msh, 3) == "DEVSYNC" and field(msh, 4) == "HUB"
    assert field(msh, 7) == "20251121044002.0000+0000"
    assert field(msh, 9) == "ORU^R01^ORU_R01"
    assert field(msh, 10) == "HUB0001"
    assert (field(msh, 11), field(msh, 12), field(msh, 15), field(msh, 16)) == ("P", "2.6", "AL", "NE")
    assert field(msh, 13) == ""
    assert field(msh, 21) == "IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO"
    pid = segments(message, "PID")[0]
    assert field(pid, 3) == "MRN0001^^^^MR"
    assert field(pid, 5) == "Doe^Jane^^^^^L"
    pv1 = segments(message, "PV1")[0]
    assert (field(pv1, 2), field(pv1, 3), field(pv1, 19)) == ("I", "ICU1-BED01", "ENC0001")
    obr = segments(message, "OBR")[0]
    assert field(obr, 7) == "20251121043930.0000+0000"  # the cuff reading, 30 s before the others
    assert field(obr, 3) == "HUB0001^DEVSYNC"


def test_each_device_has_an_mds_row_with_its_eui64(ctx, bed):
    message = render(bed, ctx)
    mds_rows = [s for s in segments(message, "OBX") if field(s, 4).endswith(".0.0.0")]
    assert [field(s, 4) for s in mds_rows] == ["1.0.0.0", "2.0.0.0", "3.0.0.0", "4.0.0.0"]
    assert [field(s, 18) for s in mds_rows] == [
        "0600DC7511000002^^0600DC7511000002^EUI-64",  # ART-01
        "0600DC7500010001^^0600DC7500010001^EUI-64",  # MON-01
        "00C0B70000000003^^00C0B70000000003^EUI-64",  # NIBP-01
        "0012340000000004^^0012340000000004^EUI-64",  # PUMP-01
    ]
    assert all(field(s, 11) == "X" and field(s, 5) == "" for s in mds_rows)
    assert field(mds_rows[3], 3) == "69985^MDC_DEV_PUMP_INFUS_MDS^MDC"


def test_arterial_line_and_cuff_keep_their_own_mdc_codes_and_containment(ctx, bed):
    message = render(bed, ctx)
    art, cuff = row_for(message, 150017), row_for(message, 150021)
    assert field(art, 3) == "150017^MDC_PRESS_BLD_ART_SYS^MDC"
    assert field(cuff, 3) == "150021^MDC_PRESS_BLD_NONINV_SYS^MDC"
    by_sub_id = {field(s, 4): field(s, 3, 2) for s in segments(message, "OBX")}
    assert by_sub_id["1.1.0.0"] == "MDC_DEV_ANALY_PRESS_BLD_VMD" and field(art, 4) == "1.1.1.1"
    assert by_sub_id["3.1.0.0"] == "MDC_DEV_PRESS_BLD_NONINV_VMD" and field(cuff, 4) == "3.1.1.1"


def test_metric_row_fields(ctx, bed):
    message = render(bed, ctx)
    hr = row_for(message, 147842)
    assert field(hr, 2) == "NM" and field(hr, 5) == "72"
    assert field(hr, 6) == "264864^MDC_DIM_BEAT_PER_MIN^MDC^/min^/min^UCUM"
    assert field(hr, 7) == "0-350"
    assert field(hr, 8) == "" and field(hr, 11) == "R"
    assert field(hr, 14) == T_TEXT
    assert field(hr, 17) == "AMEAS^auto-measurement^MDC"
    assert field(hr, 18) == "0600DC7500010001^^0600DC7500010001^EUI-64"
    temp = row_for(message, 150364)
    assert field(temp, 5) == "36.8" and field(temp, 6, 4) == "Cel"
    cuff = row_for(message, 150021)
    assert field(cuff, 17) == "MMEAS^manual-measurement^MDC"
    pump = row_for(message, 157784)
    assert field(pump, 5) == "12.5" and field(pump, 17) == "MSET^manual-setting^MDC" and field(pump, 7) == ""


def test_rhythm_text_is_a_cwe_with_the_mdc_enumeration(ctx, bed):
    rhythm = row_for(render(bed, ctx), 184327)
    assert field(rhythm, 2) == "CWE"
    assert field(rhythm, 5) == "147474^MDC_ECG_SINUS_RHY^MDC"


def test_free_text_with_delimiters_is_escaped(ctx, event_factory):
    text = "Sinus | brady ^ with PVCs & ~noise~ \\ end\r\nnext line"
    message = render([event_factory(metric="ecg-rhythm", text=text)], ctx)
    row = metric_rows(message)[0]
    assert field(row, 2) == "ST"
    assert field(row, 5) == text
    assert len(message.split("\r")) == 8  # MSH PID PV1 OBR + MDS, VMD, CHAN, metric: no CR leaked from the text


def test_long_text_goes_as_tx(ctx, event_factory):
    message = render([event_factory(metric="ecg-rhythm", text="x" * 300)], ctx)
    row = metric_rows(message)[0]
    assert field(row, 2) == "TX" and field(row, 5) == "x" * 300


def test_names_locations_and_ids_with_delimiters_are_escaped(ctx, event_factory):
    patient = PatientBinding(patient_id="MRN|7^&", encounter_id="E~1", location="ICU^1|BED\\2",
                             patient_name="O'Brien&Sons^Mary~Ann")
    message = render([event_factory(patient=patient)], ctx, control_id="C|1")
    assert field(segments(message, "MSH")[0], 10) == "C|1"
    pid = segments(message, "PID")[0]
    assert field(pid, 3, 1) == "MRN|7^&" and field(pid, 3, 5) == "MR"
    assert field(pid, 5, 1) == "O'Brien&Sons" and field(pid, 5, 2) == "Mary~Ann"
    pv1 = segments(message, "PV1")[0]
    assert field(pv1, 3) == "ICU^1|BED\\2" and field(pv1, 19) == "E~1"


def test_long_location_goes_to_the_location_description(ctx, event_factory):
    location = "Cardiac ICU North Wing, Bed 12"
    message = render([event_factory(patient=PatientBinding(patient_id="P1", location=location))], ctx)
    assert field(segments(message, "PV1")[0], 3) == "^" * 8 + location


@pytest.mark.parametrize(
    ("name", "expected"),
    [("Doe, John Paul", "Doe^John^Paul^^^^L"), ("Cher", "Cher^^^^^^L"), (None, "^^^^^^U"), ("  ", "^^^^^^U")],
)
def test_patient_name_forms(ctx, event_factory, name, expected):
    patient = PatientBinding(patient_id="P1", patient_name=name)
    message = render([event_factory(patient=patient)], ctx)
    assert str(segments(message, "PID")[0](5)) == expected


@pytest.mark.parametrize(
    ("quality", "flags", "status"),
    [
        ({Quality.QUESTIONABLE}, "QUES", "R"),
        ({Quality.INVALID}, "INV", "X"),
        ({Quality.CALIBRATING, Quality.TEST}, "CAL~TEST", "R"),
        ({Quality.DEMO, Quality.LATE}, "DEMO", "R"),
        ({Quality.LATE, Quality.REPLAYED}, "", "R"),
    ],
)
def test_quality_flags_map_to_obx8_and_obx11(ctx, event_factory, quality, flags, status):
    row = metric_rows(render([event_factory(quality=frozenset(quality))], ctx))[0]
    assert field(row, 8) == flags and field(row, 11) == status
    assert field(row, 5) == "80"


def test_manual_quality_is_a_manual_measurement(ctx, event_factory):
    row = metric_rows(render([event_factory(quality=frozenset({Quality.MANUAL}))], ctx))[0]
    assert field(row, 17) == "MMEAS^manual-measurement^MDC"


@pytest.mark.parametrize(("value", "flag"), [(None, "NAV"), (float("nan"), "NAN"), (float("inf"), "PINF")])
def test_missing_or_non_finite_values_are_flagged_and_not_obtained(ctx, event_factory, value, flag):
    row = metric_rows(render([event_factory(value=value)], ctx))[0]
    assert field(row, 5) == "" and field(row, 8) == flag and field(row, 11) == "X"


def test_sink_unit_without_mdc_dimension_is_sent_as_ucum(ctx, event_factory):
    event = event_factory(device_id="ART-01", metric="bp-systolic", value=16.0, unit="kPa", code_sent="150017")
    row = metric_rows(render([event], ctx))[0]
    assert field(row, 6) == "kPa^kPa^UCUM"
    assert field(row, 7) == "0-39.99671052"


def test_final_status_when_configured(rules, event_factory):
    ctx = RenderContext.from_rules(rules, result_status="F", hub_eui64="0600dc75ffff0001",
                                   receiving_application="EHR", receiving_facility="ICU")
    message = render([event_factory()], ctx)
    msh = segments(message, "MSH")[0]
    assert field(msh, 3) == "DEVSYNC^0600DC75FFFF0001^EUI-64"
    assert (field(msh, 5), field(msh, 6)) == ("EHR", "ICU")
    assert field(segments(message, "OBR")[0], 2) == "HUB0001^DEVSYNC^0600DC75FFFF0001^EUI-64"
    assert field(metric_rows(message)[0], 11) == "F"


def test_unknown_metric_family_is_reported_flat_under_the_mds(ctx, event_factory):
    event = event_factory(metric="heart-rate", code_sent="148066", value=2).with_changes(metric=None)
    message = render([event], ctx)
    assert [field(s, 4) for s in segments(message, "OBX")] == ["1.0.0.0", "1.0.0.1"]
    assert field(metric_rows(message)[0], 3) == "148066^^MDC"


def test_output_does_not_depend_on_input_order(ctx, bed):
    shuffled = list(bed)
    random.Random(7).shuffle(shuffled)
    assert build_oru_r01(shuffled, ctx, control_id="C", message_time=T0) == build_oru_r01(
        bed, ctx, control_id="C", message_time=T0)


def test_two_readings_of_one_metric_get_distinct_sub_ids(ctx, event_factory):
    events = [event_factory(value=70, t=T0), event_factory(value=75, t=T0 + 1, seq=1)]
    message = render(events, ctx)
    rows = metric_rows(message)
    assert [(field(r, 4), field(r, 5)) for r in rows] == [("1.1.1.1", "70"), ("1.1.1.2", "75")]


def test_rejects_empty_and_mixed_patient_batches(ctx, event_factory):
    with pytest.raises(RuleError, match="no observations"):
        build_oru_r01([], ctx, control_id="C", message_time=T0)
    other = event_factory(patient=PatientBinding(patient_id="MRN0002"), seq=1)
    with pytest.raises(RuleError, match="not bound to the same patient") as info:
        build_oru_r01([event_factory(), other], ctx, control_id="C", message_time=T0)
    assert "MRN0002" not in str(info.value)  # no patient identifiers in errors (they reach logs)
    with pytest.raises(RuleError, match="has no patient binding"):
        build_oru_r01([event_factory(patient=None)], ctx, control_id="C", message_time=T0)


def test_rejects_blank_control_id_and_patient_id(ctx, event_factory):
    with pytest.raises(HubError, match="control_id must not be blank"):
        build_oru_r01([event_factory()], ctx, control_id=" ", message_time=T0)
    with pytest.raises(RuleError, match="blank patient id"):
        build_oru_r01([event_factory(patient=PatientBinding(patient_id="  "))], ctx, control_id="C", message_time=T0)


def test_rejects_alarms_and_unknown_codes(ctx, event_factory, alarm_factory):
    with pytest.raises(RuleError, match="kind 'alarm'.*build_oru_r40"):
        build_oru_r01([event_factory(), alarm_factory()], ctx, control_id="C", message_time=T0)
    unknown = event_factory(code_sent="HR", code_system_sent="ACME").with_changes(metric=None, mdc_code=None)
    with pytest.raises(RuleError, match="no MDC code"):
        build_oru_r01([unknown], ctx, control_id="C", message_time=T0)


def test_spot_check_data_class_is_manual(ctx, event_factory):
    row = metric_rows(render([event_factory(device_id="NIBP-01", metric="bp-systolic", value=118,
                                            data_class=DataClass.SPOT_CHECK)], ctx))[0]
    assert field(row, 17) == "MMEAS^manual-measurement^MDC"
