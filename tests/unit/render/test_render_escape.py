"""Escaping and formatting helpers: HL7 escapes decode back with python-hl7; times and numbers are exact."""

from __future__ import annotations

import calendar

import hl7
import pytest

from hub.render.escape import escape_hl7, fhir_time, format_number, hl7_time, non_finite_flag

UNESCAPER = hl7.parse("MSH|^~\\&|")


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("plain", "plain"),
        ("a|b", "a\\F\\b"),
        ("a^b", "a\\S\\b"),
        ("a~b", "a\\R\\b"),
        ("a&b", "a\\T\\b"),
        ("a\\b", "a\\E\\b"),
        ("\\F\\", "\\E\\F\\E\\"),
        ("line1\rline2\n", "line1\\X0D\\line2\\X0A\\"),
        ("\x0bframe\x1c", "\\X0B\\frame\\X1C\\"),
        ("Müller", "Müller"),
        ("", ""),
    ],
)
def test_escape_hl7(raw, escaped):
    assert escape_hl7(raw) == escaped
    assert UNESCAPER.unescape(escaped) == raw


def test_escaped_text_has_no_delimiters_or_control_characters():
    text = escape_hl7("|^~&\\\r\n\x00\x7f x")
    assert not set(text) & set("|^~&\r\n\x00\x7f")


def test_hl7_time_is_utc_with_four_fraction_digits():
    t = calendar.timegm((2026, 11, 21, 21, 32, 50)) + 0.1234
    assert hl7_time(t) == "20261121213250.1234+0000"


def test_hl7_time_rounds_into_the_next_second():
    t = calendar.timegm((2026, 12, 31, 23, 59, 59)) + 0.99996
    assert hl7_time(t) == "20270101000000.0000+0000"


def test_fhir_time_is_iso_8601_with_offset():
    t = calendar.timegm((2026, 1, 2, 3, 4, 5)) + 0.5
    assert fhir_time(t) == "2026-01-02T03:04:05.500+00:00"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (80.0, "80"),
        (80, "80"),
        (36.6, "36.6"),
        (-0.5, "-0.5"),
        (1e-7, "0.0000001"),
        (1.5e-10, "0.00000000015"),
        (1.5e15, "1500000000000000"),
        (123456.789, "123456.789"),
    ],
)
def test_format_number_is_plain_decimal_that_round_trips(value, text):
    assert format_number(value) == text
    assert float(text) == float(value)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (36.800000000000004, "36.8"),  # conversion noise
        (-123456.78901234567, "-123456.78901235"),
        (0.1234567890123456789, "0.12345678901235"),
        (-1.2345678901234e-6, "-0.0000012345679"),
        (1e-20, "0"),
    ],
)
def test_format_number_keeps_what_fits_in_an_hl7_nm(value, text):
    assert format_number(value) == text
    assert len(text) <= 16


@pytest.mark.parametrize(("value", "flag"), [(float("nan"), "NAN"), (float("inf"), "PINF"), (float("-inf"), "NINF"),
                                             (1e20, "OTH")])
def test_non_finite_numbers_are_flagged_not_formatted(value, flag):
    assert format_number(value) is None
    assert non_finite_flag(value) == flag
