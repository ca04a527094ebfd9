"""ACK builder: deterministic, MSA-2 = received MSH-10, ERR names the problem; hl7apy validates it."""

from __future__ import annotations

import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message as hl7apy_parse

from connectors.hl7.ack import build_ack
from connectors.hl7.errors import Hl7Error
from connectors.hl7.message import read_header

RECEIVED = b"MSH|^~\\&|MON^0600dc7500010001^EUI-64|ICU|HUB|HOSP|20260101120000+0000||ORU^R01^ORU_R01|C42|P|2.6\r"
NOW = 1_800_000_000.0


def ack(**kwargs) -> str:
    defaults = {"ack_code": "AA", "control_id": "K1", "now": NOW, "header": read_header(RECEIVED)}
    return build_ack(**{**defaults, **kwargs}).decode()


def test_aa_is_deterministic_and_addresses_the_sender():
    text = ack()
    assert text == ack()
    msh, msa = text.rstrip("\r").split("\r")
    fields = msh.split("|")
    assert fields[2:4] == ["DEVSYNC", "DEVSYNC"]
    assert fields[4:6] == ["MON^0600dc7500010001^EUI-64", "ICU"]
    assert fields[6] == "20270115080000+0000" and fields[8] == "ACK^R01^ACK" and fields[9] == "K1"
    assert msa == "MSA|AA|C42"


def test_ae_carries_err_location_code_and_text():
    error = Hl7Error("OBX[3]-5 value 'a|b' is not an NM number", code="102", segment="OBX", sequence=3, position=5)
    segments = ack(ack_code="AE", error=error).rstrip("\r").split("\r")
    assert segments[1].startswith("MSA|AE|C42|")
    err = segments[2].split("|")
    assert err[2] == "OBX^3^5" and err[3] == "102^Data type error^HL70357" and err[4] == "E"
    assert err[8] == "OBX[3]-5 value 'a\\F\\b' is not an NM number"


@pytest.mark.parametrize("code", ["AA", "AE", "AR"])
def test_hl7apy_accepts_the_ack_strictly(code):
    error = None if code == "AA" else Hl7Error("bad", code="101", segment="OBX", sequence=2, position=4)
    parsed = hl7apy_parse(ack(ack_code=code, error=error), validation_level=VALIDATION_LEVEL.STRICT)
    parsed.validate()
    assert parsed.msa.msa_1.value == code and parsed.msa.msa_2.value == "C42"


def test_unreadable_message_gets_an_ack_with_empty_msa2():
    text = ack(ack_code="AR", header=None, error=Hl7Error("no MSH", code="100", ack_code="AR"))
    assert "\rMSA|AR||no MSH\r" in text and "|ACK|K1|P|2.6" in text


def test_unknown_ack_code_is_refused():
    with pytest.raises(ValueError):
        ack(ack_code="CA")


def test_sender_with_its_own_delimiters_is_addressed_with_standard_ones():
    header = read_header(b"MSH#*@!%#MON*0600dc7500010001*EUI-64#ICU###20260101##ORU*R01#C7#P#2.6\r")
    msh, msa = ack(header=header).rstrip("\r").split("\r")
    assert msh.split("|")[4:6] == ["MON", "ICU"] and "|ACK^R01^ACK|" in msh
    assert msa == "MSA|AA|C7"
