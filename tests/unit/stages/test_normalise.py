import pytest

from hub.errors import DecodeError
from hub.events import Quality
from hub.normalise.clocks import ClockEstimator, correct_clock
from hub.normalise.codes import Normaliser, normalise_event
from hub.rules.clocks import ClockRules
from hub.rules.load import load_rules
from hub.testing.factories import numeric_event

RULES = load_rules("rules")
NORM = Normaliser.from_rules(RULES)


@pytest.mark.parametrize(
    ("code", "value", "unit", "metric", "expected", "ucum", "mdc", "loinc"),
    [
        ("150456", 97, "%", "spo2", 97, "%", 150456, "59408-5"),
        ("147842", 80, "bpm", "heart-rate", 80, "/min", 147842, "8867-4"),
        ("150017", 16, "kPa", "bp-systolic", 120.0098, "mm[Hg]", 150017, "8480-6"),  # arterial line, kPa -> mmHg
        ("150021", 117, "MDC_DIM_MMHG", "bp-systolic", 117, "mm[Hg]", 150021, "8480-6"),  # cuff keeps its MDC code
        ("150364", 98.6, "°F", "temperature", 37.0, "Cel", 150364, "8310-5"),
        ("MDC_PULS_OXIM_PULS_RATE", 72, "/min", "heart-rate", 72, "/min", 147842, "8867-4"),
    ],
)
def test_normalise_maps_code_and_unit_keeping_originals(code, value, unit, metric, expected, ucum, mdc, loinc):
    event = normalise_event(NORM, numeric_event(code=code, value=value, unit=unit))
    assert event.metric == metric and event.unit == ucum and event.loinc == loinc and event.mdc_code == mdc
    assert event.value == pytest.approx(expected, abs=1e-3)
    assert len(repr(event.value)) < 10, "conversions are rounded to the sent precision, not 37.00000000436"
    assert event.value_sent == value and event.unit_sent == unit and event.code_sent == code


def test_unknown_code_is_a_specific_error():
    with pytest.raises(DecodeError, match=r"unknown code '999999' in system 'MDC'"):
        normalise_event(NORM, numeric_event(code="999999"))


def test_unknown_unit_is_a_specific_error():
    with pytest.raises(DecodeError, match=r"unknown unit 'furlongs'"):
        normalise_event(NORM, numeric_event(code="150456", unit="furlongs"))


def test_wrong_unit_for_metric_is_a_specific_error():
    with pytest.raises(DecodeError, match=r"no conversion from 'mm\[Hg\]' to '%'"):
        normalise_event(NORM, numeric_event(code="150456", unit="mmHg"))


def test_out_of_range_value_is_flagged_questionable():
    assert Quality.QUESTIONABLE in normalise_event(NORM, numeric_event(code="150456", value=140, unit="%")).quality


def test_clock_offset_is_minimum_over_jittery_delays():
    rules = ClockRules()
    est = ClockEstimator(rules.window_samples)
    skew = 300.0  # device clock 5 minutes behind
    delays = [0.05, 0.4, 0.02, 1.3, 0.2]
    for i, delay in enumerate(delays):
        t = 1000.0 + i
        event = correct_clock(est, numeric_event(t=t - skew, received=t + delay), rules)
    assert event.clock_offset == pytest.approx(skew + 0.02)
    assert event.corrected_time == pytest.approx(1004.0 + 0.02)


def test_clock_jump_forward_is_flagged_and_adopted():
    rules = ClockRules()
    est = ClockEstimator(rules.window_samples)
    for i in range(5):
        correct_clock(est, numeric_event(t=1000.0 + i, received=1000.0 + i + 0.1), rules)
    jumped = correct_clock(est, numeric_event(t=1005.0 + 3600, received=1005.1), rules)
    assert Quality.CLOCK_JUMP in jumped.quality
    assert jumped.corrected_time == pytest.approx(1005.1)


def test_clock_jump_backward_needs_confirmation():
    rules = ClockRules(jump_confirm_samples=3)
    est = ClockEstimator(rules.window_samples)
    for i in range(5):
        correct_clock(est, numeric_event(t=1000.0 + i, received=1000.0 + i), rules)
    flags = [Quality.CLOCK_JUMP in correct_clock(est, numeric_event(t=1005.0 + i - 3600, received=1005.0 + i), rules).quality
             for i in range(3)]
    assert flags == [False, False, True]
