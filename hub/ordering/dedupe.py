"""Dedupe by event id with bounded memory per stream (pure; state passed in)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass
class DedupeWindow:
    """The last `capacity` event ids seen on one stream."""

    capacity: int
    order: deque[str] = field(default_factory=deque)
    seen: set[str] = field(default_factory=set)

    def to_dict(self) -> dict:
        return {"capacity": self.capacity, "ids": list(self.order)}

    @classmethod
    def from_dict(cls, data: dict) -> DedupeWindow:
        ids = data.get("ids", [])
        return cls(data["capacity"], deque(ids), set(ids))


def dedupe_event(window: DedupeWindow, event_id: str) -> bool:
    """True when `event_id` is new on this stream (and remember it); False for a duplicate."""
    if event_id in window.seen:
        return False
    window.seen.add(event_id)
    window.order.append(event_id)
    if len(window.order) > window.capacity:
        window.seen.discard(window.order.popleft())
    return True
