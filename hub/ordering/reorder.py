"""Reorder per stream by sequence number within a time window (pure; `now` passed in).

An event is held until it has waited `window_s`; when one is released, every held event
with a smaller sequence number is released before it. So any delay up to the window is
undone. An event whose sequence number is not above the last released one arrived after
its window closed: it is passed on at once flagged `late`, never dropped. A stream whose
sequence numbers are contiguous (seq == last + 1) is released without waiting; the first
event of a stream waits like any other, since an earlier one may still be on its way.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import itemgetter
from typing import NamedTuple

from hub.events import Event, Quality, event_text

held_seq = itemgetter(0)  # the sequence number of a held entry


@dataclass
class ReorderBuffer:
    window_s: float
    max_events: int
    held: list[tuple[int, float, str, Event]] = field(default_factory=list)  # heap of (seq, arrival, id, event)
    last_released: int | None = None

    def to_dict(self, encode: Callable[[Event], str] = event_text) -> dict:
        return {
            "window_s": self.window_s,
            "max_events": self.max_events,
            "last_released": self.last_released,
            "held": [[arrival, encode(e)] for _, arrival, _, e in self.held],
        }

    @classmethod
    def from_dict(cls, data: dict) -> ReorderBuffer:
        buf = cls(data["window_s"], data["max_events"], last_released=data.get("last_released"))
        for arrival, raw in data.get("held", []):
            event = Event.from_json(raw)
            heapq.heappush(buf.held, (event.seq, arrival, event.event_id, event))
        return buf


class Released(NamedTuple):
    events: list[Event]
    reordered: int = 0  # released events that had arrived out of order
    late: int = 0


def reorder_push(buf: ReorderBuffer, event: Event, now: float) -> Released:
    """Add one event; return what can be released now, in sequence order."""
    fields = event.__dict__  # one read of the model (see hub.events.time_and_id)
    seq = fields["seq"]
    if release_in_order(buf, seq):
        return Released([event])
    if buf.last_released is not None and seq <= buf.last_released:
        return Released([event.flagged(Quality.LATE)], late=1)
    out_of_order = bool(buf.held) and seq < max(map(held_seq, buf.held))  # a higher number is held
    heapq.heappush(buf.held, (seq, now, fields["event_id"], event))
    released = reorder_flush(buf, now)
    return Released(released.events, reordered=int(out_of_order))


def release_in_order(buf: ReorderBuffer, seq: int) -> bool:
    """Whether an event with this sequence number passes at once, as it is (the next number with
    nothing held, or no window); if so it is taken as the last released. A stage can then pass the
    event on without pushing it (reorder_push would return it alone)."""
    last = buf.last_released
    contiguous = last is not None and seq == last + 1
    if (buf.window_s <= 0 and (last is None or seq > last)) or (not buf.held and contiguous):
        buf.last_released = seq
        return True
    return False


def reorder_flush(buf: ReorderBuffer, now: float) -> Released:
    """Release every held event that has waited the window (and all smaller sequence numbers).

    Also released without waiting: the next contiguous sequence number, and the oldest
    events when more than `max_events` are held.
    """
    if not buf.held:
        return Released([])
    release_upto = None
    for seq, arrival, _, _ in buf.held:
        if now - arrival >= buf.window_s and (release_upto is None or seq > release_upto):
            release_upto = seq
    out: list[Event] = []
    while buf.held:
        top = buf.held[0][0]
        due = release_upto is not None and top <= release_upto
        contiguous = buf.last_released is not None and top == buf.last_released + 1
        if not (due or contiguous or len(buf.held) > buf.max_events):
            break
        event = heapq.heappop(buf.held)[3]
        buf.last_released = event.seq
        out.append(event)
    return Released(out)


def reorder_drain(buf: ReorderBuffer) -> list[Event]:
    """Release everything held (shutdown)."""
    out = [heapq.heappop(buf.held)[3] for _ in range(len(buf.held))]
    if out:
        buf.last_released = out[-1].seq
    return out


def reorder_restart(buf: ReorderBuffer) -> list[Event]:
    """The stream's sequence numbering starts over (a device whose sequence is its clock, after a
    clock jump): release what is held, in order, and forget the last released number, so the new
    numbers are neither flagged late (clock went back) nor waited for (clock went forward)."""
    out = reorder_drain(buf)
    buf.last_released = None
    return out
