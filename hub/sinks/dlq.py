"""Dead-letter replay: after the rules or the EHR were fixed, send dead letters again, exactly once.

Each open dead letter's event (as it reached the sink, before routing) is routed again with the
current rules, skipping the charting policy (it was already chosen for charting), and delivered
by the sink it failed at. The ledger makes it exactly once: an event already delivered at that
sink is not sent again, and a replayed dead letter is closed (status `replayed`) so a second
`replay --all` finds nothing. If it fails again it gets a new dead letter with the new reason and
the old one is closed as `failed`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hub.errors import SinkError
from hub.events import Event
from hub.sinks.metrics import DLQ_REPLAYED
from hub.store import DELIVERED, DLQ, Store
from hub.store.deadletters import FAILED, REPLAYED
from hub.store.records import HELD, DeadLetter


@dataclass
class ReplayReport:
    delivered: list[int] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)  # (dlq id, new reason)
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (dlq id, why not replayed)


async def replay_dead_letters(store: Store, sinks: dict, letters: list[DeadLetter]) -> ReplayReport:
    """Replay `letters` through `sinks` (name -> sink); the caller builds the sinks from the fixed rules."""
    report = ReplayReport()
    accepted: list[tuple[DeadLetter, Event]] = []
    for letter in letters:
        if letter.status != "open":
            report.skipped.append((letter.id, f"already {letter.status}"))
            continue
        sink = sinks.get(letter.sink)
        if sink is None:
            report.skipped.append((letter.id, _why_no_sink(letter, sinks)))
            continue
        event = Event.from_json(letter.event)
        if not sink.add_replay(event, tag=f"dlq{letter.id}"):
            report.skipped.append((letter.id, f"no route to sink {letter.sink!r} matches this event any more"))
            continue
        accepted.append((letter, event))
    for name in sorted({letter.sink for letter, _ in accepted}):
        await _flush_until_done(sinks[name])
    _close_letters(store, accepted, report)
    return report


def _why_no_sink(letter: DeadLetter, sinks: dict) -> str:
    if letter.sink == "pipeline":
        return (f"dead-lettered by the pipeline step '{letter.step}', before any sink: send the device data again "
                "(or re-ingest it) once the rules are fixed; sink replay cannot rebuild pipeline state")
    if letter.sink == "deliver":
        return ("a record of the observations topic that `devsync deliver` could not read as a canonical event "
                "(the reason says where and why): nothing to send; fix what produced it")
    return (f"sink {letter.sink!r} is not configured in these rules "
            f"(configured: {', '.join(sorted(sinks)) or 'none'})")


async def _flush_until_done(sink, attempts: int = 3) -> None:
    for attempt in range(attempts):
        try:
            await sink.flush()
            return
        except SinkError:
            if attempt == attempts - 1:
                raise


def _close_letters(store: Store, accepted: list[tuple[DeadLetter, Event]], report: ReplayReport) -> None:
    for letter, event in accepted:
        state = store.delivery_states(letter.sink, [event.event_id]).get(event.event_id)
        if state is not None and state.status in (DELIVERED, HELD):
            store.mark_dead_letters([letter.id], REPLAYED, f"{state.status}: {state.detail or ''}".strip())
            report.delivered.append(letter.id)
            DLQ_REPLAYED.labels(letter.sink, "delivered").inc()
        else:
            reason = state.reason if state is not None and state.status == DLQ else "not delivered"
            store.mark_dead_letters([letter.id], FAILED, f"failed again: {reason}")
            report.failed.append((letter.id, reason or ""))
            DLQ_REPLAYED.labels(letter.sink, "failed").inc()
