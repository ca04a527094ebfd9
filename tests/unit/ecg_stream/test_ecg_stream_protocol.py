"""The ECG1 wire protocol: frames round-trip; malformed frames are clear DecodeErrors."""

from __future__ import annotations

import numpy as np
import pytest

from connectors.ecg_stream.protocol import (
    HEADER,
    HELLO,
    SAMPLES,
    DeviceAlarm,
    Hello,
    SamplePacket,
    decode_alarm,
    decode_header,
    decode_hello,
    decode_samples,
    encode_alarm,
    encode_hello,
    encode_samples,
)
from hub.errors import DecodeError


def split(frame: bytes) -> tuple[int, bytes]:
    kind, length = decode_header(frame[:HEADER.size])
    assert len(frame) == HEADER.size + length
    return kind, frame[HEADER.size:]


def test_frames_round_trip():
    hello = Hello("ECG-1", 500.0, ("MDC_ECG_LEAD_I", "MDC_ECG_LEAD_II"), factor=0.5, serial="SN1")
    kind, payload = split(encode_hello(hello))
    assert kind == HELLO and decode_hello(payload) == hello
    samples = np.array([[1, -2], [32767, -32768], [0, 5]], dtype=np.int16)
    kind, payload = split(encode_samples(SamplePacket(7, 123456789, 1.7e9 + 0.25, samples)))
    back = decode_samples(payload, max_samples=100)
    assert kind == SAMPLES and (back.seq, back.first_index, back.device_time) == (7, 123456789, 1.7e9 + 0.25)
    assert np.array_equal(back.samples, samples)
    alarm = DeviceAlarm("a1", "MDC_EVT_ECG_V_FIB", "VF", "high", "active", 1.7e9)
    assert decode_alarm(split(encode_alarm(alarm))[1]) == alarm


@pytest.mark.parametrize(("header", "message"), [
    (b"HL7\x00\x02\x00\x00\x00\x00", "expected b'ECG1'"),
    (b"ECG1\x09\x00\x00\x00\x00", "unknown frame type 9"),
    (b"ECG1\x02\xff\xff\xff\x7f", "exceeds"),
])
def test_bad_headers_say_what_was_wrong(header, message):
    with pytest.raises(DecodeError, match=message):
        decode_header(header)


def test_a_samples_payload_of_the_wrong_length_is_refused():
    _, payload = split(encode_samples(SamplePacket(1, 0, 0.0, np.zeros((10, 2), dtype=np.int16))))
    with pytest.raises(DecodeError, match=r"packet 1: 61 bytes for 10 samples x 2 leads \(expected 63\)"):
        decode_samples(payload[:-2], max_samples=100)
    with pytest.raises(DecodeError, match="max_packet_samples"):
        decode_samples(payload, max_samples=5)


def test_a_hello_without_its_fields_is_refused():
    with pytest.raises(DecodeError, match="needs device_id, sample_rate_hz, leads"):
        decode_hello(b'{"device_id": "x"}')
