"""HL7 DTM <-> epoch seconds."""

from __future__ import annotations

import pytest

from connectors.hl7.dtm import DtmError, format_dtm, parse_dtm, parse_offset

T0 = 1_421_951_216.0  # 2015-01-22 18:26:56 UTC


@pytest.mark.parametrize(
    "text,default,expected",
    [
        ("20150122182656+0000", 0, T0),
        ("20150122182656", 0, T0),
        ("20150122122656-0600", 0, T0),
        ("20150122122656", -360, T0),  # no offset: the one passed in (MSH-7's)
        ("20150122182656.25+0000", 0, T0 + 0.25),
        ("201501221826", 0, T0 - 56),
        ("2015", 0, 1_420_070_400.0),
    ],
)
def test_parse_dtm(text, default, expected):
    assert parse_dtm(text, default) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["2015012", "20151322000000", "20150230000000", "20150122256000", "abc",
                                  "20080101123456- 0600", "2015.5"])
def test_bad_dtm(text):
    with pytest.raises(DtmError):
        parse_dtm(text, 0)


def test_offsets_and_format():
    assert parse_offset("+0530") == 330 and parse_offset("-0600") == -360
    assert format_dtm(T0) == "20150122182656+0000"
    assert format_dtm(T0, -360) == "20150122122656-0600"
    assert parse_dtm(format_dtm(T0, 330)) == T0
