"""Splitting on the message's own delimiters, charsets from MSH-18, header errors (AR)."""

from __future__ import annotations

import pytest

from connectors.hl7.errors import Hl7Error
from connectors.hl7.message import component, parse_message, read_header, unescape

ORU = "MSH|^~\\&|MON|WARD|||20260101120000+0100||ORU^R01^ORU_R01|C42|P|2.6\rPID|||123^^^H^MR\r"


def test_fields_indexed_like_the_standard():
    msg = parse_message(ORU.encode())
    msh = msg.segments[0]
    assert msh[1] == "|" and msh[2] == "^~\\&" and msh[9] == "ORU^R01^ORU_R01" and msh[10] == "C42"
    assert msg.header.type_name == "ORU^R01" and msg.header.control_id == "C42"
    assert msg.first("PID")[3] == "123^^^H^MR"


def test_own_delimiters_from_msh1_and_msh2():
    text = "MSH#*@!%#MON#WARD###20260101120000##ORU*R01#C7#P#2.6\rOBX#1#NM#150456*MDC_PULS_OXIM_SAT_O2*MDC\r"
    msg = parse_message(text.encode())
    assert msg.header.type_name == "ORU^R01"
    assert component(msg.first("OBX")[3], 2, msg.delims) == "MDC_PULS_OXIM_SAT_O2"


def test_crlf_segment_ends_are_tolerated():
    msg = parse_message(ORU.replace("\r", "\r\n").encode())
    assert [s[0] for s in msg.segments] == ["MSH", "PID"]


def test_latin1_declared_in_msh18_decodes():
    text = "MSH|^~\\&|MON|WARD|||20260101||ORU^R01|C1|P|2.6||||||8859/1\rNTE|||Temp \xb0C\r"
    msg = parse_message(text.encode("latin-1"))
    assert msg.first("NTE")[3] == "Temp °C"


def test_not_utf8_without_msh18_is_rejected_with_offset():
    data = ORU.encode() + b"NTE|||\xff\xfe\r"
    with pytest.raises(Hl7Error) as err:
        parse_message(data)
    assert err.value.ack_code == "AR" and err.value.code == "102"
    assert "not valid UTF-8" in err.value.reason and f"offset {len(ORU) + 6}" in err.value.reason


def test_unknown_charset_names_the_supported_ones():
    text = "MSH|^~\\&|MON|WARD|||20260101||ORU^R01|C1|P|2.6||||||KLINGON\r"
    with pytest.raises(Hl7Error) as err:
        parse_message(text.encode())
    assert err.value.code == "103" and "MSH-18" in err.value.reason and "UNICODE UTF-8" in err.value.reason


def test_message_not_starting_with_msh():
    with pytest.raises(Hl7Error) as err:
        parse_message(b"PID|||123\rMSH|^~\\&|A\r")
    assert err.value.ack_code == "AR" and "must start with an MSH segment (found 'PID')" in err.value.reason


@pytest.mark.parametrize("position,what", [(9, "message type"), (10, "message control id"), (12, "version id")])
def test_required_msh_fields(position, what):
    fields = ORU.split("\r")[0].split("|")
    fields[position - 1] = ""
    with pytest.raises(Hl7Error) as err:
        parse_message(("|".join(fields) + "\r").encode())
    assert err.value.code == "101" and f"MSH-{position} ({what}) is required" in err.value.reason


def test_garbage_segment_is_named():
    with pytest.raises(Hl7Error) as err:
        parse_message((ORU + "hello world\r").encode())
    assert err.value.ack_code == "AE" and "segment 3" in err.value.reason


def test_read_header_survives_a_truncated_message():
    header = read_header(b"MSH|^~\\&|MON|WARD|||20260101||ORU^R01|C99|P|2.6|||||||")
    assert header.control_id == "C99"
    assert read_header(b"garbage") is None


def test_unescape():
    delims = parse_message(ORU.encode()).delims
    assert unescape(r"a\F\b\S\c\T\d\R\e\E\f", delims) == "a|b^c&d~e\\f"
    assert unescape(r"\X41\BC", delims) == "ABC"
