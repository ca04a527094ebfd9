"""Clock correction: estimate each device's clock offset and correct its times (pure).

Every reading gives d = received_time - device_time = offset + network delay, and the
delay is never negative, so the minimum of d over a window of recent readings estimates
the offset robustly against jitter. A sudden drop of d (device clock jumped forward) is
taken at once; a rise beyond `jump_threshold_s` (clock jumped back) must persist for
`jump_confirm_samples` readings before it is believed. Both are flagged `clock-jump`.
Replayed events (edge backlog) do not update the estimate: their received_time is the
gateway's, and they use the current offset.

`observe_clock` says which of three things a reading showed: a steady clock, a (confirmed)
jump, or a suspected backward jump awaiting confirmation. Stage 1 holds the suspected readings
(a resend delayed past the threshold looks the same at first) and corrects them once the next
readings decide: with the new offset after a confirmed jump, with the old one otherwise. Until
then no offset is right for them: the old one would put them an hour in the past.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum

from hub.events import Event, Quality
from hub.rules.clocks import ClockRules


@dataclass
class ClockEstimator:
    window: int
    samples: deque[float] = field(default_factory=deque)
    pending_jump: int = 0
    minimum: float | None = None  # min(samples), kept up to date (derived)
    at_minimum: int = 0  # how many samples equal the minimum (derived): it moves when the last one leaves

    def offset(self) -> float | None:
        return self.minimum

    def add(self, d: float) -> None:
        self.samples.append(d)
        if self.minimum is None or d < self.minimum:
            self.minimum, self.at_minimum = d, 1
        elif d == self.minimum:
            self.at_minimum += 1
        if len(self.samples) > self.window and self.samples.popleft() == self.minimum:
            self.at_minimum -= 1
            if not self.at_minimum:
                self.minimum = min(self.samples)
                self.at_minimum = self.samples.count(self.minimum)

    def clear(self) -> None:
        self.samples.clear()
        self.minimum, self.at_minimum = None, 0

    def to_dict(self) -> dict:
        return {"window": self.window, "samples": list(self.samples), "pending_jump": self.pending_jump}

    @classmethod
    def from_dict(cls, data: dict) -> ClockEstimator:
        samples = deque(data["samples"])
        minimum = min(samples) if samples else None
        return cls(data["window"], samples, data.get("pending_jump", 0), minimum, samples.count(minimum))


class ClockVerdict(StrEnum):
    STEADY = "steady"
    JUMPED = "jumped"  # the offset changed by more than the threshold (believed)
    SUSPECT = "suspect"  # looks like a backward jump, not confirmed yet


def observe_clock(est: ClockEstimator, d: float, rules: ClockRules) -> ClockVerdict:
    """Feed one reading's d (received minus device time); say what it showed about the device's clock."""
    current = est.offset()
    threshold = rules.jump_threshold_s
    verdict = ClockVerdict.STEADY
    if current is not None and current - d > threshold:
        est.clear()  # device clock jumped forward: new readings are believed at once
        verdict = ClockVerdict.JUMPED
    elif current is not None and d - current > threshold:
        est.pending_jump += 1
        if est.pending_jump < rules.jump_confirm_samples:
            return ClockVerdict.SUSPECT  # not (yet) believed; do not pollute the window
        est.clear()  # device clock jumped back, confirmed
        verdict = ClockVerdict.JUMPED
    est.pending_jump = 0
    est.add(d)
    return verdict


def with_offset(est: ClockEstimator, event: Event, rules: ClockRules, *, jumped: bool = False) -> Event:
    """Set clock_offset and corrected_time from the current estimate (flagged clock-jump if `jumped`)."""
    return event.with_changes(**offset_fields(est, event.__dict__, rules, jumped=jumped))


def offset_fields(est: ClockEstimator, fields: dict, rules: ClockRules, *, jumped: bool = False) -> dict:
    """The fields with_offset changes, given the event's fields (its __dict__), so a stage can apply
    them together with its own changes in one copy of the event."""
    offset = est.offset() or 0.0
    if not rules.apply_correction or abs(offset) < rules.min_correction_s:
        offset = 0.0
    changes: dict = {"clock_offset": offset, "corrected_time": fields["device_time"] + offset}
    if jumped:
        changes["quality"] = fields["quality"] | {Quality.CLOCK_JUMP}
    return changes


def correct_clock(est: ClockEstimator, event: Event, rules: ClockRules) -> Event:
    """Observe the reading (unless replayed) and correct it with the estimate that follows.

    A suspected backward jump is corrected with the offset before it (what stage 1 avoids by
    holding such readings until the jump is confirmed or not)."""
    replayed = event.provenance.replayed
    verdict = ClockVerdict.STEADY if replayed else observe_clock(est, event.received_time - event.device_time, rules)
    return with_offset(est, event, rules, jumped=verdict is ClockVerdict.JUMPED)
