"""Bad input gets the specific negative ACK, and a good message right after on the same connection is accepted."""

from __future__ import annotations

import asyncio

import pytest
from mllp_support import Recorder, ack_fields, connect, philips, running_listener

pytestmark = pytest.mark.integration

MAX_FRAME = 4096


def framed(payload: bytes) -> bytes:
    return b"\x0b" + payload + b"\x1c\r"


def replaced(old: bytes, new: bytes) -> bytes:
    message = philips("BAD1")
    assert old in message
    return framed(message.replace(old, new, 1))


CASES = {
    # name: (bytes written, MSA-1, MSA-2, ERR-3, words in ERR-8)
    "data before the start block": (
        b"MSH|^~\\&|X|Y|||20260101||ORU^R01|NOSB|P|2.6\r\x1c\r", "AR", "NOSB", "100", "outside an MLLP block"),
    "oversized frame": (
        framed(philips("BIG1") + b"NTE|||" + b"x" * 2 * MAX_FRAME + b"\r"), "AR", "BIG1", "102",
        f"exceeds the limit of {MAX_FRAME} bytes"),
    "unterminated block": (b"\x0bMSH|^~\\&|X|Y|||20260101||ORU^R01|CUT1|P|2.6\r", "AR", "CUT1", "100",
                           "no end block"),
    "not UTF-8": (framed(philips("ENC1").replace(b"|8859/1|", b"||") + b"NTE|||caf\xe9\r"), "AR", "ENC1", "102",
                  "not valid UTF-8"),
    "first segment is not MSH": (framed(b"PID|||123\r" + philips("X")), "AR", "", "100",
                                 "must start with an MSH segment"),
    "unknown message type": (replaced(b"ORU^R01^ORU_R01", b"QRY^Q01"), "AR", "BAD1", "200",
                             "unsupported message type QRY^Q01 (supported: ADT^A01"),
    "unknown trigger event": (replaced(b"ORU^R01^ORU_R01", b"ORU^R99"), "AR", "BAD1", "201",
                              "unsupported message type ORU^R99"),
    "missing MSH-10": (framed(philips("")), "AR", "", "101",
                       "MSH-10 (message control id) is required"),
    "missing OBX-4": (replaced(b"|1.2.1.1|80|", b"||80|"), "AE", "BAD1", "101", "OBX[9]-4 (observation sub-id)"),
    "value not a number": (replaced(b"|1.2.1.1|80|", b"|1.2.1.1|8O|"), "AE", "BAD1", "102",
                           "OBX[9]-5 value '8O' is not an NM number"),
    "missing OBR-7": (replaced(b"|||20150122180000\r", b"|||\r"), "AE", "BAD1", "101", "OBR-7"),
    "bad time": (replaced(b"|20150122110000", b"|2015-01-22"), "AE", "BAD1", "102", "OBX[4]-14"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_gets_a_specific_nak_and_the_stream_carries_on(case):
    data, code, control_id, err_code, words = CASES[case]

    async def scenario():
        recorder = Recorder()
        async with running_listener(recorder, max_frame_bytes=MAX_FRAME) as listener:
            reader, writer = await connect(listener.port)
            writer.write(data)
            await writer.drain()
            good = framed(philips("GOOD"))
            writer.write(good)  # right behind the bad input, in the same stream
            await writer.drain()
            bad_ack = ack_fields(await reader.readmessage())
            good_ack = ack_fields(await reader.readmessage())
            writer.close()
        return bad_ack, good_ack, recorder

    bad_ack, good_ack, recorder = asyncio.run(scenario())
    assert (bad_ack["code"], bad_ack["control_id"], bad_ack["err_code"]) == (code, control_id, err_code)
    assert words in bad_ack["text"].replace("\\S\\", "^")
    assert good_ack == {"code": "AA", "control_id": "GOOD"}
    assert {e.provenance.raw_ref for e in recorder.events} == {"GOOD"}
