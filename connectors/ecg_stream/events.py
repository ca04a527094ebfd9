"""Canonical events from a streaming ECG device (pure builders; times and seqs passed in).

Streams of one device `D` (each with its own strictly increasing seq):
  D/ecg          waveform chunks (seq = slot number: the device sample index // chunk samples)
  D/ecg/status   device status: gaps, overlaps, clock steps, connection changes
  D/ecg/rwave    R-wave timestamps (device_time = the R peak; value = RR interval in s)
  D/ecg/hr       heart rate (MDC_ECG_CARD_BEAT_RATE, /min)
  D/ecg/alarm    alarms (rule-based or device-sent; fast path in the hub)
  D/ecg/partial  partial records: the last N seconds sent at once on an alarm (event.alarm says which)

`received_time` of an event derived from samples (R wave, heart rate, rule alarm, partial
record) is when the connector received those samples, not when the analysis finished: the
hub's clock estimate (received - device time = offset + delay) stays right for every stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from connectors.ecg_stream.protocol import Hello
from hub.events import (
    Alarm,
    AlarmPhase,
    AlarmPriority,
    AlarmState,
    DataClass,
    Device,
    Event,
    EventKind,
    Provenance,
    Quality,
    Waveform,
    make_event_id,
)
from hub.render.sampled_data import MISSING_SAMPLE

CONNECTOR = "ecg-stream"
RR_MDC = (147240, "MDC_ECG_TIME_PD_RR_GL")
HR_MDC = "147842"
PARTIAL_STATUS = "partial-record"


@dataclass(frozen=True)
class StreamContext:
    """Who and how: the device, its HELLO, and the clock mapping of this connection."""

    device: Device
    hello: Hello
    anchor_index: int = 0
    anchor_time: float = 0.0  # device time of sample `anchor_index`
    offset: float = 0.0  # estimated: true = device + offset

    def device_time(self, index: int) -> float:
        return self.anchor_time + (index - self.anchor_index) / self.hello.sample_rate_hz

    @property
    def stream(self) -> str:
        return f"{self.device.id}/ecg"


def _base(ctx: StreamContext, *, kind: EventKind, data_class: DataClass, stream: str, seq: int, key: object,
          device_time: float, received: float, **fields) -> Event:
    return Event(
        event_id=make_event_id(ctx.device.id, stream, key), kind=kind, data_class=data_class, device=ctx.device,
        stream=stream, seq=seq, device_time=device_time, received_time=received, clock_offset=ctx.offset,
        corrected_time=device_time + ctx.offset, provenance=Provenance(connector=CONNECTOR, raw_ref=f"{stream}@{key}"),
        **fields)


def waveform_of(ctx: StreamContext, first_index: int, samples: np.ndarray) -> Waveform:
    return Waveform(sample_rate_hz=ctx.hello.sample_rate_hz, start_time=ctx.device_time(first_index),
                    leads=ctx.hello.leads, samples=tuple(tuple(col) for col in samples.T.tolist()),
                    factor=ctx.hello.factor, baseline=ctx.hello.baseline, unit=ctx.hello.unit)


def chunk_event(ctx: StreamContext, slot: int, first_index: int, samples: np.ndarray, missing: int,
                received: float) -> Event:
    last = first_index + len(samples) - 1
    quality = frozenset({Quality.MISSING}) if missing else frozenset()
    return _base(ctx, kind=EventKind.WAVEFORM, data_class=DataClass.WAVEFORM, stream=ctx.stream, seq=slot,
                 key=first_index, device_time=ctx.device_time(last), received=received, quality=quality,
                 waveform=waveform_of(ctx, first_index, samples))


def status_event(ctx: StreamContext, seq: int, key: object, text: str, index: int | None, received: float) -> Event:
    when = ctx.device_time(index) if index is not None else received - ctx.offset
    return _base(ctx, kind=EventKind.DEVICE_STATUS, data_class=DataClass.STATUS, stream=f"{ctx.stream}/status",
                 seq=seq, key=key, device_time=when, received=received, status=text)


def gap_text(first_index: int, n_samples: int, fs: float) -> str:
    return f"gap: {n_samples} samples ({n_samples / fs:.3f} s) lost from sample {first_index}"


def overlap_text(first_index: int, n_samples: int, fs: float) -> str:
    return f"overlap: {n_samples} samples ({n_samples / fs:.3f} s) from sample {first_index} received again, dropped"


def rwave_event(ctx: StreamContext, seq: int, peak: int, rr_s: float | None, received: float) -> Event:
    return _base(ctx, kind=EventKind.NUMERIC, data_class=DataClass.WAVEFORM, stream=f"{ctx.stream}/rwave", seq=seq,
                 key=peak, device_time=ctx.device_time(peak), received=received, metric="rr-interval",
                 mdc_code=RR_MDC[0], mdc_ref=RR_MDC[1], code_sent=str(RR_MDC[0]), code_system_sent="MDC",
                 value_sent=rr_s, value=rr_s, unit_sent="s", unit="s", text=f"R wave at sample {peak}")


def heart_rate_event(ctx: StreamContext, seq: int, index: int, bpm: float, received: float) -> Event:
    return _base(ctx, kind=EventKind.NUMERIC, data_class=DataClass.VITAL, stream=f"{ctx.stream}/hr", seq=seq,
                 key=index, device_time=ctx.device_time(index), received=received, code_sent=HR_MDC,
                 code_system_sent="MDC", value_sent=round(bpm, 1), unit_sent="/min")


def alarm_of(ctx: StreamContext, condition: str, text: str, priority: str, active: bool, alarm_id: str) -> Alarm:
    return Alarm(condition=condition, text=text, priority=AlarmPriority(priority),
                 state=AlarmState.ACTIVE if active else AlarmState.INACTIVE,
                 phase=AlarmPhase.START if active else AlarmPhase.END, alarm_id=alarm_id, source_metric="ecg")


def alarm_event(ctx: StreamContext, seq: int, alarm: Alarm, index: int, received: float) -> Event:
    return _base(ctx, kind=EventKind.ALARM, data_class=DataClass.ALARM, stream=f"{ctx.stream}/alarm", seq=seq,
                 key=(alarm.alarm_id, alarm.phase), device_time=ctx.device_time(index), received=received,
                 alarm=alarm, code_sent=alarm.condition, text=alarm.text)


def partial_record_event(ctx: StreamContext, seq: int, alarm: Alarm, first_index: int, samples: np.ndarray,
                         received: float) -> Event:
    missing = bool((samples == MISSING_SAMPLE).any())
    quality = frozenset({Quality.MISSING}) if missing else frozenset()
    last = first_index + len(samples) - 1
    return _base(ctx, kind=EventKind.WAVEFORM, data_class=DataClass.WAVEFORM, stream=f"{ctx.stream}/partial", seq=seq,
                 key=alarm.alarm_id, device_time=ctx.device_time(last), received=received, alarm=alarm,
                 status=PARTIAL_STATUS, quality=quality, waveform=waveform_of(ctx, first_index, samples))
