"""Rule-based ECG alarms and the partial record they send ahead (pure; ecgAware semantics).

    engine = AlarmEngine(rules.ecg.alarms, sample_rate_hz=500)
    changes = engine.observe(result, start_index)   # after each R-wave analysis: start/end of alarms
    history.add(chunk)                               # every released chunk
    samples = history.excerpt(upto_index, seconds)   # the last N seconds before the alarm, at once

Conditions: asystole/pause (no R wave for `pause_s`, unless samples were lost meanwhile: a
lead-off or lost link is not a pause), bradycardia and tachycardia (heart rate outside
[hr_low_bpm, hr_high_bpm]). Each raises a start when it begins and an end when it clears;
a start sends a partial record unless the same condition sent one within `retrigger_s`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from connectors.ecg_stream.jitter import Chunk
from connectors.ecg_stream.rwave import RwaveResult
from hub.rules.ecg import EcgAlarmRules

ASYSTOLE = "MDC_EVT_ECG_ASYSTOLE"
BRADY = "MDC_EVT_ECG_BRADY"
TACHY = "MDC_EVT_ECG_TACHY"
PRIORITY = {ASYSTOLE: "high", BRADY: "medium", TACHY: "medium"}


@dataclass(frozen=True)
class AlarmChange:
    condition: str
    text: str
    priority: str
    active: bool  # True = start, False = end
    at_index: int  # sample index the change refers to
    partial_record: bool  # send the last N seconds now


@dataclass
class AlarmEngine:
    rules: EcgAlarmRules
    sample_rate_hz: float
    active: set[str] = field(default_factory=set)
    last_partial: dict[str, int] = field(default_factory=dict)
    last_beat: int | None = None

    def observe(self, result: RwaveResult, start_index: int) -> list[AlarmChange]:
        changes: list[AlarmChange] = []
        fs, limit = self.sample_rate_hz, self.rules.pause_s
        previous = self.last_beat if self.last_beat is not None else start_index
        # pauses that began and ended between the beats of this analysis (detection may run late)
        for beat in result.peaks:
            gap = (beat - previous) / fs
            if gap > limit and not result.lost_between(previous, beat):
                self._set(changes, ASYSTOLE, True, previous + int(limit * fs), _pause_text(gap, limit))
            self._set(changes, ASYSTOLE, False, beat, "")
            previous = beat
        self.last_beat = previous if result.peaks else self.last_beat
        # a pause still going on at the end of what was analysed
        pause = (result.analysed_upto - previous) / fs
        paused = pause > limit and not result.lost_between(previous, result.analysed_upto)
        if paused:
            self._set(changes, ASYSTOLE, True, previous + int(limit * fs), _pause_text(pause, limit))
        rate = result.heart_rate_bpm
        if rate is not None and not paused:
            self._set(changes, BRADY, rate < self.rules.hr_low_bpm, result.analysed_upto,
                      f"heart rate {rate:.0f}/min below {self.rules.hr_low_bpm:g}/min")
            self._set(changes, TACHY, rate > self.rules.hr_high_bpm, result.analysed_upto,
                      f"heart rate {rate:.0f}/min above {self.rules.hr_high_bpm:g}/min")
        return changes

    def device_alarm(self, condition: str, at_index: int) -> bool:
        """A device-sent alarm started: True when it should send a partial record."""
        return self.rules.device_alarms and self._partial_due(condition, at_index)

    def _partial_due(self, condition: str, at_index: int) -> bool:
        last = self.last_partial.get(condition)
        if last is not None and (at_index - last) / self.sample_rate_hz < self.rules.retrigger_s:
            return False
        self.last_partial[condition] = at_index
        return True

    def _set(self, changes: list[AlarmChange], condition: str, on: bool, at: int, text: str) -> None:
        if on and condition not in self.active:
            self.active.add(condition)
            changes.append(AlarmChange(condition, text, PRIORITY[condition], True, at, self._partial_due(condition, at)))
        elif not on and condition in self.active:
            self.active.discard(condition)
            changes.append(AlarmChange(condition, f"{condition} cleared", PRIORITY[condition], False, at, False))


def _pause_text(seconds: float, limit: float) -> str:
    return f"asystole/pause: no R wave for {seconds:.1f} s (limit {limit:g} s)"


@dataclass
class ChunkHistory:
    """The released chunks of the last `seconds`, to cut partial records from."""

    sample_rate_hz: float
    seconds: float
    chunks: deque[Chunk] = field(default_factory=deque)

    def add(self, chunk: Chunk) -> None:
        self.chunks.append(chunk)
        keep_from = chunk.first_index + len(chunk.samples) - int((self.seconds + 2) * self.sample_rate_hz)
        while self.chunks and self.chunks[0].first_index + len(self.chunks[0].samples) <= keep_from:
            self.chunks.popleft()

    @property
    def end_index(self) -> int:
        return self.chunks[-1].first_index + len(self.chunks[-1].samples) if self.chunks else 0

    def received_at(self, index: int, default: float) -> float:
        """About when the connector received sample `index`: its chunk's last arrival, less the samples after it
        (what the hub's clock estimate needs as the received time of an event derived from that sample)."""
        for chunk in reversed(self.chunks):
            end = chunk.first_index + len(chunk.samples)
            if chunk.first_index <= index < end:
                return chunk.received_time - (end - 1 - index) / self.sample_rate_hz
        return default

    def excerpt(self, upto_index: int, seconds: float) -> tuple[int, np.ndarray] | None:
        """(first index, samples) of the `seconds` before `upto_index` that are held; None when none are."""
        if not self.chunks:
            return None
        lo = max(upto_index - round(seconds * self.sample_rate_hz), self.chunks[0].first_index)
        parts = [c for c in self.chunks if c.first_index < upto_index and c.first_index + len(c.samples) > lo]
        if not parts:
            return None
        data = np.concatenate([c.samples for c in parts])
        start = parts[0].first_index
        return lo, data[lo - start:upto_index - start]
