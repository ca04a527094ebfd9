"""The sink contract: `add(event)` per observation, `await flush()` at the checkpoint.

    for event in batch: sink.add(event)      # routes, converts, applies the charting policy, buffers
    await sink.flush()                       # returns once every added observation has a fate

`add()` is synchronous and cheap: it routes the event (hub.sinks.router), converts it to the
sink's unit, asks the charting policy (hub.sinks.charting) and hands it to the sink's buffer;
sinks start sending in the background as soon as a batch is full or old enough. A data problem
(no unit conversion, no patient) sends that one event to the DLQ; nothing else stops.

`flush()` returns when every added event is delivered, held back by the charting policy or
dead-lettered, with its fate written to the ledger. When the peer stays unreachable it raises
`SinkError(retriable=True, retry_after=s)` and keeps everything: the caller must not commit its
input offsets, should pause input, and call flush() again after `retry_after` (do not add the
same events again; if it does, they are recognised and not sent twice).
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod

from hub.errors import RuleError, SinkError
from hub.events import Event
from hub.logs import get_logger
from hub.rules.models import RuleSet
from hub.sinks.charting import ChartingGate
from hub.sinks.metrics import count_events
from hub.sinks.router import SinkRoutes, apply_route, match_route
from hub.store import DLQ, DUPLICATE, HELD, Outcome, Store
from hub.store.records import FINAL

HELD_WRITE_BATCH = 1000


class Sink(ABC):
    name: str = "sink"
    needs_patient: bool = True

    def __init__(self, rules: RuleSet, store: Store, *, name: str | None = None):
        self.name = name or self.name
        self.step = f"sink.{self.name}"
        self.rules = rules
        self.store = store
        self.routes = SinkRoutes.from_rules(rules, self.name)
        self.gate = ChartingGate([p for p in rules.sinks.charting if p.sink == self.name])
        self.log = get_logger(self.step)
        self._held: list[Outcome] = []

    def _duplicate_outcome(self, event_id: str, state, replay) -> Outcome | None:
        """The outcome for a redelivered observation already in flight or with a final fate
        (a dead-lettered one may be sent again by a replay); None when it must be sent."""
        if event_id in self._inflight or (
                state is not None and state.status in FINAL and not (replay and state.status == DLQ)):
            return Outcome(event_id, self.name, DUPLICATE, detail=f"already {state.status if state else 'in flight'}")
        return None

    def _write_results(self, *, raise_errors: bool = True) -> None:
        """Write the sink's pending outcomes (`self._results`) to the ledger; on failure keep them."""
        results, self._results = self._results, []
        try:
            self.store.record_outcomes(results)
        except Exception as exc:
            self._results = results + self._results  # kept for the next write; flush() must not succeed
            self.log.warning("ledger write failed, outcomes kept", outcomes=len(results), error=type(exc).__name__)
            if raise_errors:
                raise

    # --- phase 1: add ---
    def add(self, event: Event) -> None:
        self.gate.observe(event)
        matched = match_route(self.routes, event)
        if matched is None:
            return
        count_events(self.name, "in")
        routed = self._route(event, matched)
        if routed is None:
            return
        decision = self.gate.decide(routed)
        if not decision.chart:
            self._hold(event, decision.reason)
            return
        self._accept(routed, event)

    def add_replay(self, event: Event, tag: str) -> bool:
        """Re-route a dead-lettered event (rules may have been fixed), skipping the charting policy.

        `tag` (the dead letter's id) makes the resend distinguishable from the rejected original
        (a new MSH-10), yet the same on every retry of this replay. False when no route matches."""
        matched = match_route(self.routes, event)
        if matched is None:
            return False
        count_events(self.name, "in")
        routed = self._route(event, matched)
        if routed is not None:
            self._accept(routed, event, replay=tag)
        return True

    def _route(self, event: Event, matched) -> Event | None:
        if self.needs_patient and event.patient is None:
            self.dead_letter([event], step="route",
                             reason=f"{self.step}: event has no patient binding (park it until associated)")
            return None
        index, route = matched
        try:
            return apply_route(self.routes, index, route, event)
        except RuleError as exc:
            self.dead_letter([event], step="route", reason=str(exc))
            return None

    def _hold(self, event: Event, reason: str) -> None:
        self._held.append(Outcome(event.event_id, self.name, HELD, reason=reason))
        count_events(self.name, "held")
        if len(self._held) >= HELD_WRITE_BATCH:
            self._write_held()

    def _write_held(self) -> None:
        held, self._held = self._held, []
        try:
            self.store.record_outcomes(held)
        except Exception:
            self._held = held + self._held  # kept: flush() fails and is called again
            raise

    def dead_letter(self, events: list[Event], *, step: str, reason: str, payload: str | None = None,
                    control_id: str | None = None) -> list[int]:
        letters = [{"event_id": e.event_id, "sink": self.name, "step": step, "reason": reason,
                    "event": e.to_json().decode(), "payload": payload, "control_id": control_id} for e in events]
        ids = self.store.record_dead_letters(letters)
        count_events(self.name, DLQ, len(events))
        self.log.warning("dead-lettered", events=len(events), dlq_step=step, reason=reason[:300])
        return ids

    @abstractmethod
    def _accept(self, routed: Event, original: Event, *, replay: str | None = None) -> None:
        """Buffer one routed event for delivery (start sending when a batch is ready)."""

    # --- phase 2: flush ---
    async def flush(self) -> None:
        self._write_held()
        await self._drain()

    @abstractmethod
    async def _drain(self) -> None:
        """Deliver everything accepted so far; raise SinkError(retriable=True) if the peer stays away."""

    async def close(self) -> None:
        """Stop background work. Unflushed events are not lost: their input offsets were never committed."""
        self._write_held()


async def wait_lanes(lanes, timeout_s: float) -> bool:
    """True when every lane drained within timeout_s."""
    waiters = [asyncio.ensure_future(lane.wait_idle()) for lane in lanes]
    if not waiters:
        return True
    _done, pending = await asyncio.wait(waiters, timeout=timeout_s)
    for task in pending:
        task.cancel()
    return not pending


def not_accepted_error(sink: str, peer: str, waiting: int, timeout_s: float, last_error: str | None,
                       retry_after: float) -> SinkError:
    return SinkError(
        f"{sink}: {waiting} observation(s) not yet accepted by {peer} after {timeout_s:g} s "
        f"(last error: {last_error or 'none'}); still retrying, call flush() again",
        retriable=True, retry_after=retry_after,
    )
