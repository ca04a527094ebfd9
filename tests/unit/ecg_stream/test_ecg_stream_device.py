"""One device's stream state, driven packet by packet with chosen clocks (no network)."""

from __future__ import annotations

import numpy as np
import pytest

from connectors.ecg_stream.device import DeviceStream
from connectors.ecg_stream.protocol import Hello, SamplePacket
from hub.events import DataClass, Device, EventKind, Quality
from hub.rules.ecg import EcgRules

FS, PER = 250.0, 25  # 0.1 s packets
TRUE_OFFSET = -7.5    # true = device + offset
START = 1_800_000_000.0


def stream(**stream_rules) -> DeviceStream:
    hello = Hello("ECG-9", FS, ("MDC_ECG_LEAD_I", "MDC_ECG_LEAD_II"), factor=1.0)
    rules = EcgRules.model_validate({"stream": {"jitter_buffer_s": 0.5, **stream_rules}, "rwave": {"enabled": False}})
    return DeviceStream(hello, Device(id="ECG-9", type="ecg-stream"), rules)


def send(state: DeviceStream, seq: int, delay: float, *, device_time: float | None = None):
    first = seq * PER
    true_last = START + (first + PER - 1) / FS
    dt = device_time if device_time is not None else START + first / FS - TRUE_OFFSET
    data = np.full((PER, 2), seq, dtype=np.int16)
    now = true_last + delay
    return state.on_packet(SamplePacket(seq, first, dt, data), now) + state.release(now), now


def test_chunks_carry_aligned_clocks_and_sequence_numbers():
    state = stream()
    events = []
    for seq in range(25):
        out, _now = send(state, seq, delay=0.02 + 0.01 * (seq % 3))
        events += out
    chunks = [e for e in events if e.kind is EventKind.WAVEFORM]
    assert [c.seq for c in chunks] == [0, 1]
    first = chunks[0]
    assert first.stream == "ECG-9/ecg" and first.data_class is DataClass.WAVEFORM
    assert first.clock_offset == pytest.approx(TRUE_OFFSET + 0.02, abs=1e-6)  # offset + the smallest delay
    assert first.device_time == pytest.approx(START + (FS - 1) / FS - TRUE_OFFSET)
    assert first.corrected_time == pytest.approx(START + (FS - 1) / FS + 0.02, abs=1e-6)
    assert first.waveform.start_time == pytest.approx(START - TRUE_OFFSET)
    assert first.waveform.samples[0][:PER] == (0,) * PER and len(first.waveform.samples[1]) == FS


def test_a_lost_packet_becomes_a_status_event_when_its_deadline_passes():
    state = stream()
    events = []
    for seq in [s for s in range(16) if s != 3]:
        out, _now = send(state, seq, delay=0.02)
        events += out
    gaps = [e for e in events if e.kind is EventKind.DEVICE_STATUS]
    assert [g.status for g in gaps] == ["gap: 25 samples (0.100 s) lost from sample 75"]
    assert gaps[0].stream == "ECG-9/ecg/status" and gaps[0].data_class is DataClass.STATUS
    chunk = next(e for e in events if e.kind is EventKind.WAVEFORM)
    assert Quality.MISSING in chunk.quality and chunk.waveform.samples[0][75] == -32768
    assert state.gaps == 1


def test_a_device_clock_step_is_reported_and_re_anchored():
    state = stream(clock_step_s=1.0)
    send(state, 0, 0.02)
    out, _ = send(state, 1, 0.02, device_time=START + PER / FS - TRUE_OFFSET + 3600)  # clock jumped an hour
    [status] = [e for e in out if e.kind is EventKind.DEVICE_STATUS]
    assert status.status.startswith("clock step:") and "+3600.000 s" in status.status
    assert state.ctx.offset == pytest.approx(TRUE_OFFSET - 3600 + 0.02, abs=1e-6)
