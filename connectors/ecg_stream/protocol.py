"""The streaming ECG wire protocol (pure): frames the simulator sends and the connector reads.

Every frame: magic `ECG1` | type (u8) | payload length (u32, little-endian) | payload.

    HELLO   (1)  JSON: device_id, serial, model, manufacturer, sample_rate_hz, leads (MDC names),
                 factor (unit per count), baseline (count meaning 0), unit
    SAMPLES (2)  packet seq (u32) | first sample index (u64) | device time of that sample (f64, epoch s)
                 | samples per lead (u16) | leads (u8) | int16 counts, sample-major (s0l0 s0l1 ... s1l0 ...)
    ALARM   (3)  JSON: alarm_id, condition, text, priority, state, device_time

The sample index counts samples since the device started streaming: it, not the packet seq,
places samples in time, so a lost packet is a gap of known length and a resent one an overlap.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass

import numpy as np

from hub.errors import DecodeError

MAGIC = b"ECG1"
HEADER = struct.Struct("<4sBI")
SAMPLES_HEADER = struct.Struct("<IQdHB")
HELLO, SAMPLES, ALARM = 1, 2, 3
FRAME_TYPES = {HELLO: "hello", SAMPLES: "samples", ALARM: "alarm"}
MAX_PAYLOAD = 16 * 1024 * 1024


@dataclass(frozen=True)
class Hello:
    device_id: str
    sample_rate_hz: float
    leads: tuple[str, ...]
    factor: float = 1.0
    baseline: int = 0
    unit: str = "uV"
    serial: str | None = None
    model: str | None = None
    manufacturer: str | None = None


@dataclass(frozen=True)
class SamplePacket:
    seq: int
    first_index: int
    device_time: float
    samples: np.ndarray  # (n_samples, n_leads) int16

    @property
    def n(self) -> int:
        return int(self.samples.shape[0])


@dataclass(frozen=True)
class DeviceAlarm:
    alarm_id: str
    condition: str
    text: str
    priority: str
    state: str
    device_time: float


def encode_frame(kind: int, payload: bytes) -> bytes:
    return HEADER.pack(MAGIC, kind, len(payload)) + payload


def encode_hello(hello: Hello) -> bytes:
    body = {k: v for k, v in vars(hello).items()}
    body["leads"] = list(hello.leads)
    return encode_frame(HELLO, json.dumps(body).encode())


def encode_samples(packet: SamplePacket) -> bytes:
    n, leads = packet.samples.shape
    head = SAMPLES_HEADER.pack(packet.seq, packet.first_index, packet.device_time, n, leads)
    return encode_frame(SAMPLES, head + np.ascontiguousarray(packet.samples, dtype="<i2").tobytes())


def encode_alarm(alarm: DeviceAlarm) -> bytes:
    return encode_frame(ALARM, json.dumps(vars(alarm)).encode())


def decode_header(data: bytes) -> tuple[int, int]:
    """(frame type, payload length) from the 9 header bytes; DecodeError when they are not a frame."""
    magic, kind, length = HEADER.unpack(data)
    if magic != MAGIC:
        raise DecodeError(f"frame starts with {magic!r}, expected {MAGIC!r} (not an ECG1 stream or out of step)",
                          field="magic")
    if kind not in FRAME_TYPES:
        raise DecodeError(f"unknown frame type {kind} (known: {FRAME_TYPES})", field="type")
    if length > MAX_PAYLOAD:
        raise DecodeError(f"frame of {length} bytes exceeds {MAX_PAYLOAD}", field="length")
    return kind, length


def decode_hello(payload: bytes) -> Hello:
    try:
        body = json.loads(payload)
        return Hello(device_id=str(body["device_id"]), sample_rate_hz=float(body["sample_rate_hz"]),
                     leads=tuple(body["leads"]), factor=float(body.get("factor", 1.0)),
                     baseline=int(body.get("baseline", 0)), unit=str(body.get("unit", "uV")),
                     serial=body.get("serial"), model=body.get("model"), manufacturer=body.get("manufacturer"))
    except (ValueError, KeyError, TypeError) as exc:
        raise DecodeError(f"HELLO is not valid ({exc}); needs device_id, sample_rate_hz, leads", field="hello") from exc


def decode_samples(payload: bytes, *, max_samples: int) -> SamplePacket:
    if len(payload) < SAMPLES_HEADER.size:
        raise DecodeError(f"SAMPLES payload of {len(payload)} bytes is shorter than its header", field="samples")
    seq, first, device_time, n, leads = SAMPLES_HEADER.unpack_from(payload)
    expected = SAMPLES_HEADER.size + 2 * n * leads
    if len(payload) != expected or leads == 0:
        raise DecodeError(f"SAMPLES packet {seq}: {len(payload)} bytes for {n} samples x {leads} leads "
                          f"(expected {expected})", field="samples")
    if n > max_samples:
        raise DecodeError(f"SAMPLES packet {seq}: {n} samples per lead exceeds ecg.stream.max_packet_samples "
                          f"({max_samples})", field="samples")
    data = np.frombuffer(payload, dtype="<i2", offset=SAMPLES_HEADER.size).reshape(n, leads)
    return SamplePacket(seq, first, device_time, data)


def decode_alarm(payload: bytes) -> DeviceAlarm:
    try:
        body = json.loads(payload)
        return DeviceAlarm(str(body["alarm_id"]), str(body["condition"]), str(body.get("text", "")),
                           str(body.get("priority", "high")), str(body.get("state", "active")),
                           float(body["device_time"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise DecodeError(f"ALARM is not valid ({exc}); needs alarm_id, condition, device_time", field="alarm") from exc
