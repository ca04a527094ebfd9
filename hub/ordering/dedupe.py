"""Dedupe by event id with bounded memory per stream (pure; state passed in).

Connectors derive a reading's event id from the device, the metric and the *device's* time,
so a resend gets the same id. After a device clock jumps back, the device hands out times it
already used, and a new reading can get the id of one an hour old. `dedupe_reading` tells the
two apart by the clock offsets (received minus device time):
- a copy arriving with the offset of its first copy (within the clock-jump threshold) is a resend;
- a copy arriving with another offset while the device's clock still reads as it did for the
  first copy (stage 1's clock estimate) is a resend that was delayed;
- otherwise the device's clock has moved since: it is a new reading, kept under a new id
  derived deterministically from the old one and the epoch's number on this id (a replay
  through the same stream state gives the same id, and a resend of it is again a duplicate).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from hub.events import make_event_id

MAX_EPOCHS = 16  # clock epochs told apart per event id (beyond that: treated as a duplicate)


@dataclass
class DedupeWindow:
    """The last `capacity` event ids seen on one stream, with the clock offset each arrived with."""

    capacity: int
    order: deque[str] = field(default_factory=deque)
    seen: dict[str, float | None] = field(default_factory=dict)  # id -> offset (received - device time)

    def to_dict(self) -> dict:
        return {"capacity": self.capacity, "ids": list(self.order), "offsets": [self.seen[i] for i in self.order]}

    @classmethod
    def from_dict(cls, data: dict) -> DedupeWindow:
        ids = data.get("ids", [])
        offsets = data.get("offsets") or [None] * len(ids)
        return cls(data["capacity"], deque(ids), dict(zip(ids, offsets)))

    def remember(self, event_id: str, offset: float | None) -> None:
        self.seen[event_id] = offset
        self.order.append(event_id)
        if len(self.order) > self.capacity:
            self.seen.pop(self.order.popleft(), None)


def dedupe_event(window: DedupeWindow, event_id: str) -> bool:
    """True when `event_id` is new on this stream (and remember it); False for a duplicate."""
    if event_id in window.seen:
        return False
    window.remember(event_id, None)
    return True


def is_resend(window: DedupeWindow, event_id: str, offset: float, tolerance_s: float) -> bool:
    """The id was seen with about this offset: a plain resend (checked before the clock sees it)."""
    first = window.seen.get(event_id, _MISSING)
    return first is not _MISSING and (first is None or abs(offset - first) <= tolerance_s)


def dedupe_reading(window: DedupeWindow, event_id: str, offset: float, tolerance_s: float,
                   clock_offset: float | None) -> str | None:
    """The id to carry on with (`event_id`, or its re-keyed form for a later clock epoch) and
    remember it, or None for a duplicate. `clock_offset`: the device's offset as estimated now."""
    key = event_id
    for epoch in range(MAX_EPOCHS):
        if epoch:
            key = make_event_id(event_id, "clock-epoch", epoch)
        first = window.seen.get(key, _MISSING)
        if first is _MISSING:
            window.remember(key, offset)
            return key
        if first is None or abs(offset - first) <= tolerance_s:
            return None  # a resend
        if clock_offset is None or abs(clock_offset - first) <= tolerance_s:
            return None  # the clock has not moved since the first copy: a delayed resend
    return None


_MISSING = object()
