"""One device's live stream (no I/O): packets in, canonical events out.

    state = DeviceStream(hello, device, rules.ecg)
    events = state.on_packet(packet, received)        # overlaps reported; samples into the jitter buffer
    events += state.release(now)                       # chunks due now, gaps, partial records waiting for data
    if state.rwave.due(): window = state.rwave.snapshot(); events += state.on_rwave(window, find_peaks(window), now)
    events += state.on_device_alarm(alarm, received)

Clock alignment: every packet gives d = arrival - device time of its last sample = offset +
delay (delay >= 0); the minimum of d over the last `clock_window_packets` is the offset
(true = device + offset). Sample times come from the sample index anchored at the latest
packet's device time; a device time that disagrees with the sample count by more than
`clock_step_s` is a clock step: re-anchored and reported.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from connectors.ecg_stream import events as ev
from connectors.ecg_stream import metrics
from connectors.ecg_stream.alarms import AlarmEngine, ChunkHistory
from connectors.ecg_stream.jitter import Chunk, JitterBuffer
from connectors.ecg_stream.protocol import DeviceAlarm, Hello, SamplePacket
from connectors.ecg_stream.rwave import RwaveDetector, Window
from hub.events import Alarm, Device, Event, make_event_id
from hub.rules.ecg import EcgRules

PREFERRED = ("II", "MLII", "I", "V5", "V2", "V1")


class DeviceStream:
    def __init__(self, hello: Hello, device: Device, rules: EcgRules):
        self.rules = rules
        self.fs = hello.sample_rate_hz
        self.ctx = ev.StreamContext(device=device, hello=hello)
        self.chunk_samples = max(1, round(rules.stream.chunk_s * self.fs))
        self.buffer = JitterBuffer(self.chunk_samples, len(hello.leads))
        self.offsets: deque[float] = deque(maxlen=rules.stream.clock_window_packets)
        self.anchored = False
        self.seqs: dict[str, int] = {}
        self.rwave = RwaveDetector(self.fs, rules.rwave)
        self.rwave_lead = _pick_lead(hello.leads, rules.rwave.lead)
        self.alarms = AlarmEngine(rules.alarms, self.fs)
        # enough history for a partial record cut from an analysis that finished late (busy detector)
        self.history = ChunkHistory(self.fs, rules.alarms.partial_record_s + rules.rwave.window_s
                                    + 2 * rules.rwave.detect_every_s + 5.0)
        self.pending_partials: list[tuple[Alarm, int]] = []  # waiting until the samples up to the index are released
        self.next_hr_index = 0
        self.gaps = 0
        self.overlaps = 0

    # ---- bookkeeping ----
    def _seq(self, stream: str) -> int:
        value = self.seqs.get(stream, 0)
        self.seqs[stream] = value + 1
        return value

    def _status(self, key: object, text: str, index: int | None, received: float) -> Event:
        return ev.status_event(self.ctx, self._seq("status"), key, text, index, received)

    # ---- input ----
    def on_packet(self, packet: SamplePacket, received: float) -> list[Event]:
        out: list[Event] = []
        metrics.PACKETS.inc()
        out += self._align_clock(packet, received)
        for overlap in self.buffer.push(packet.first_index, packet.samples, received):
            self.overlaps += 1
            metrics.OVERLAPS.inc()
            metrics.OVERLAP_SAMPLES.inc(overlap.n_samples)
            out.append(self._status(("overlap", overlap.first_index, packet.seq),
                                    ev.overlap_text(overlap.first_index, overlap.n_samples, self.fs),
                                    overlap.first_index, received))
        return out

    def _align_clock(self, packet: SamplePacket, received: float) -> list[Event]:
        expected = self.ctx.device_time(packet.first_index)
        step = self.anchored and abs(packet.device_time - expected) > self.rules.stream.clock_step_s
        if not self.anchored or step or packet.first_index >= self.ctx.anchor_index:
            self.ctx = ev.StreamContext(self.ctx.device, self.ctx.hello, packet.first_index, packet.device_time,
                                        self.ctx.offset)
        if step:
            self.offsets.clear()
        self.offsets.append(received - (packet.device_time + (packet.n - 1) / self.fs))
        offset = min(self.offsets)
        self.ctx = ev.StreamContext(self.ctx.device, self.ctx.hello, self.ctx.anchor_index, self.ctx.anchor_time, offset)
        self.anchored = True
        metrics.CLOCK_OFFSET.observe(abs(offset))
        if step:
            return [self._status(("clock-step", packet.first_index),
                                 f"clock step: device time {packet.device_time:.3f} differs from the sample count's "
                                 f"{expected:.3f} by {packet.device_time - expected:+.3f} s; re-anchored",
                                 packet.first_index, received)]
        return []

    def deadline_index(self, now: float) -> float:
        """Samples before this index are past the jitter-buffer deadline."""
        device_now = now - self.rules.stream.jitter_buffer_s - self.ctx.offset
        return self.ctx.anchor_index + (device_now - self.ctx.anchor_time) * self.fs

    # ---- output ----
    def release(self, now: float) -> list[Event]:
        if not self.anchored:
            return []
        chunks, gaps = self.buffer.release(self.deadline_index(now))
        out: list[Event] = []
        for gap in gaps:
            self.gaps += 1
            metrics.GAPS.inc()
            metrics.GAP_SECONDS.inc(gap.n_samples / self.fs)
            out.append(self._status(("gap", gap.first_index), ev.gap_text(gap.first_index, gap.n_samples, self.fs),
                                    gap.first_index, now))
        for chunk in chunks:
            out += self._on_chunk(chunk, now)
        metrics.HELD_SECONDS.set(self.buffer.held_samples / self.fs)
        return out

    def _on_chunk(self, chunk: Chunk, now: float) -> list[Event]:
        metrics.CHUNKS.labels("partial" if chunk.missing else "complete").inc()
        event = ev.chunk_event(self.ctx, chunk.slot, chunk.first_index, chunk.samples, chunk.missing,
                               chunk.received_time)
        metrics.RELEASE_DELAY.observe(max(0.0, now - event.corrected_time))
        self.history.add(chunk)
        if self.rwave_lead is not None:
            self.rwave.push(chunk.first_index, chunk.samples[:, self.rwave_lead], self.ctx.hello.factor)
        out = [event]
        ready = [(a, i) for a, i in self.pending_partials if self.history.end_index >= i]
        self.pending_partials = [(a, i) for a, i in self.pending_partials if self.history.end_index < i]
        for alarm, index in ready:
            out += self._partial(alarm, index, now)
        return out

    def _partial(self, alarm: Alarm, upto: int, now: float) -> list[Event]:
        excerpt = self.history.excerpt(upto, self.rules.alarms.partial_record_s)
        if excerpt is None:
            return []
        metrics.PARTIAL_RECORDS.inc()
        first, samples = excerpt
        received = self.history.received_at(first + len(samples) - 1, now)
        return [ev.partial_record_event(self.ctx, self._seq("partial"), alarm, first, samples, received)]

    def on_rwave(self, window: Window, peaks: np.ndarray, now: float) -> list[Event]:
        result = self.rwave.accept(window, peaks)
        out: list[Event] = []
        previous = None
        for peak in result.peaks:
            last = previous if previous is not None else self.alarms.last_beat
            rr = (peak - last) / self.fs if last is not None else None
            out.append(ev.rwave_event(self.ctx, self._seq("rwave"), peak, rr, self.history.received_at(peak, now)))
            previous = peak
        metrics.RWAVES.inc(len(result.peaks))
        if result.heart_rate_bpm is not None and result.analysed_upto >= self.next_hr_index:
            at = result.analysed_upto
            out.append(ev.heart_rate_event(self.ctx, self._seq("hr"), at, result.heart_rate_bpm,
                                           self.history.received_at(at, now)))
            self.next_hr_index = result.analysed_upto + int(self.rules.rwave.hr_every_s * self.fs)
        for change in self.alarms.observe(result, self.buffer.start_index or 0):
            alarm_id = make_event_id(self.ctx.device.id, change.condition, "start" if change.active else "end",
                                     change.at_index)
            alarm = ev.alarm_of(self.ctx, change.condition, change.text, change.priority, change.active, alarm_id)
            metrics.ALARMS.labels("rule").inc(change.active)
            out.append(ev.alarm_event(self.ctx, self._seq("alarm"), alarm, change.at_index,
                                      self.history.received_at(change.at_index, now)))
            if change.partial_record:
                out += self._partial(alarm, change.at_index, now)
        return out

    def on_device_alarm(self, device_alarm: DeviceAlarm, received: float) -> list[Event]:
        index = self.ctx.anchor_index + round((device_alarm.device_time - self.ctx.anchor_time) * self.fs)
        active = device_alarm.state.lower() == "active"
        priority = device_alarm.priority.lower() if device_alarm.priority.lower() in ("high", "medium", "low", "info") \
            else "high"
        alarm = ev.alarm_of(self.ctx, device_alarm.condition, device_alarm.text or device_alarm.condition, priority,
                            active, device_alarm.alarm_id)
        metrics.ALARMS.labels("device").inc()
        out = [ev.alarm_event(self.ctx, self._seq("alarm"), alarm, index, received)]
        if active and self.alarms.device_alarm(device_alarm.condition, index):
            if self.history.end_index >= index:
                out += self._partial(alarm, index, received)
            else:
                self.pending_partials.append((alarm, index))
        return out

    def disconnected(self, now: float, reason: str) -> list[Event]:
        return [self._status(("disconnected", now), f"disconnected: {reason}", None, now)]


def _pick_lead(leads: tuple[str, ...], wanted: str) -> int | None:
    from hub.render.sampled_data import lead_key

    keys = [lead_key(name) or name for name in leads]
    for name in (wanted, *PREFERRED):
        key = lead_key(name) or name
        if key in keys:
            return keys.index(key)
    return 0 if leads else None
