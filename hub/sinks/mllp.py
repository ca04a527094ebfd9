"""HL7 v2 sink: IHE PCD-01 ORU^R01 over MLLP (optionally TLS) to the EHR.

Observations are grouped per patient and time into ORU^R01 messages whose MSH-10 is derived
from the observation event ids, so a resend (after a timeout, a dropped connection or a hub
crash) carries the same control id and the EHR can recognise it. Before sending, the ledger
records each observation as `sent` with its control id (write-ahead): after a crash the same
observations are regrouped under the same control id. Patients are partitioned over
`connections` lanes, each with one message in flight, so per-patient order holds and an
AE/AR for one patient (dead-lettered with the EHR's text) never blocks the others.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from hub.errors import SinkError
from hub.events import Event
from hub.rules.models import RuleSet
from hub.rules.sinks import MllpSinkConfig
from hub.sinks.base import Sink, not_accepted_error, wait_lanes
from hub.sinks.lanes import Lane, backoff_delay, lane_for
from hub.sinks.metrics import LATE_ACKS, SINK_MESSAGES, SINK_RETRIES, SINK_SEND_SECONDS, count_events, queued
from hub.sinks.mllp_link import MllpLink
from hub.sinks.tls import client_ssl_context
from hub.store import DB_UNAVAILABLE, DELIVERED, DUPLICATE, SENT, Outcome, Store

RESULT_WRITE_BATCH = 500


@dataclass(slots=True)
class Outgoing:
    control_id: str
    events: list[Event]  # as routed to this sink
    originals: list[Event]  # as they reached the sink (what a replay starts from)
    text: str | None  # rendered on the lane, once (a resend is byte-identical)
    partition_key: str


def control_id_for(sink: str, event_ids: Sequence[str], salt: str = "") -> str:
    """MSH-10 from the content: the same observations always get the same 20-character id."""
    digest = hashlib.blake2b("\x1f".join([sink, salt, *sorted(event_ids)]).encode(), digest_size=10)
    return digest.hexdigest()


def group_messages(sink: str, keep, size: int) -> list[tuple[str, list[Event], list[Event]]]:
    """(control id, routed events, originals) per ORU message: one patient and one time per message.

    `keep` holds (routed, original, replay tag, control id already sent under or None). Events
    sent before (a crash or a resend) stay together under their old control id."""
    groups: dict[tuple, list[tuple[Event, Event]]] = {}
    for routed, original, replay, previous in keep:
        key = ("sent", previous) if previous else ("new", _patient_key(routed), routed.effective_time, replay or "")
        groups.setdefault(key, []).append((routed, original))
    result = []
    for key, members in groups.items():
        chunks = [members] if key[0] == "sent" else [members[i:i + size] for i in range(0, len(members), size)]
        for chunk in chunks:
            ids = [r.event_id for r, _ in chunk]
            control_id = key[1] if key[0] == "sent" else control_id_for(sink, ids, key[3])
            result.append((control_id, [r for r, _ in chunk], [o for _, o in chunk]))
    return result


def render_context(rules: RuleSet):
    from hub.render.context import RenderContext

    return RenderContext.from_rules(rules)


class MllpSink(Sink):
    name = "hl7v2"
    write_ahead = True  # record `sent` + control id before sending (regroup after a crash)

    def __init__(self, rules: RuleSet, store: Store, config: MllpSinkConfig, *, name: str | None = None,
                 render_ctx=None):
        super().__init__(rules, store, name=name)
        self.config = config
        self.ctx = render_ctx if render_ctx is not None else render_context(rules)
        context = client_ssl_context(config.tls, f"sinks.{self.name}")
        self.peer = f"{config.host}:{config.port}"
        self.links = [
            MllpLink(config.host, config.port, ssl_context=context,
                     server_hostname=config.tls.server_hostname if config.tls else None,
                     connect_timeout_s=config.connect_timeout_s, ack_timeout_s=config.ack_timeout_s,
                     max_frame_bytes=config.max_frame_bytes, on_stray_ack=self._stray_ack)
            for _ in range(config.connections)
        ]
        self.lanes = [Lane(f"{self.name}-{i}", self._deliver_on(link), config.backoff)
                      for i, link in enumerate(self.links)]
        self._buffer: list[tuple[Event, Event, str | None]] = []
        self._inflight: set[str] = set()
        self._results: list[Outcome] = []
        self._timer: asyncio.TimerHandle | None = None
        self._ledger_away = False

    # --- add side ---
    def _accept(self, routed: Event, original: Event, *, replay: str | None = None) -> None:
        self._buffer.append((routed, original, replay))
        queued(self.name).inc()
        if len(self._buffer) >= self.config.batch_size:
            self._cut_or_leave_for_flush()
        else:
            self._arm_timer()

    def _arm_timer(self) -> None:
        if self._timer is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop yet: flush() will cut
        self._timer = loop.call_later(self.config.max_batch_delay_s, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._cut_or_leave_for_flush()

    def _cut_or_leave_for_flush(self) -> None:
        """Cut now; if the ledger is away, the observations stay buffered and only flush() cuts
        (and raises) until a cut succeeds again."""
        if self._ledger_away:
            return
        try:
            self._cut()
        except DB_UNAVAILABLE as exc:
            self._ledger_away = True
            self.log.warning("ledger away: batch left for the checkpoint", buffered=len(self._buffer),
                             error=type(exc).__name__)

    def _cut(self) -> None:
        """Turn buffered observations into messages and queue them on their patients' lanes."""
        entries = list(self._buffer)  # taken off the buffer only once the ledger took the write-ahead
        if not entries:
            return
        states = self.store.delivery_states(self.name, [routed.event_id for routed, _, _ in entries])
        keep, skipped = [], []
        for routed, original, replay in entries:
            state = states.get(routed.event_id)
            duplicate = self._duplicate_outcome(routed.event_id, state, replay)
            if duplicate is not None:
                skipped.append(duplicate)
                continue
            previous = state.control_id if state is not None and state.status == SENT else None
            keep.append((routed, original, replay, previous))
        queued(self.name).dec(len(skipped))
        count_events(self.name, DUPLICATE, len(skipped))
        messages = self._outgoing(self._group(keep))
        ahead = [Outcome(e.event_id, self.name, SENT, m.control_id) for m in messages for e in m.events] \
            if self.write_ahead else []
        self.store.record_outcomes(skipped + ahead)
        del self._buffer[:len(entries)]
        running = _loop_running()
        for message in messages:
            self._inflight.update(e.event_id for e in message.events)
            lane = self.lanes[lane_for(message.partition_key, len(self.lanes))]
            lane.put(message)
            if running:
                lane.start()

    def _group(self, keep) -> list[tuple[str, list[Event], list[Event]]]:
        return group_messages(self.name, keep, self.config.max_observations_per_message)

    def _outgoing(self, groups) -> list[Outgoing]:
        """Messages are rendered by their lane just before the first send (overlapping ACK waits)."""
        return [Outgoing(control_id, events, originals, None, _patient_key(events[0]))
                for control_id, events, originals in groups]

    def _render_or_dead_letter(self, message: Outgoing) -> bool:
        try:
            message.text = self.render(message.events, message.control_id)
            return True
        except Exception as exc:  # noqa: BLE001 - a message that cannot be built is a data error
            self.dead_letter(message.originals, step="render", reason=f"{self.step}: cannot build message: {exc}",
                             control_id=message.control_id)
            self._inflight.difference_update(e.event_id for e in message.events)
            queued(self.name).dec(len(message.events))
            return False

    def render(self, events: list[Event], control_id: str) -> str:
        from hub.render.hl7v2 import build_oru_r01

        message_time = max(e.effective_time for e in events)  # deterministic: a resend is byte-identical
        return build_oru_r01(events, self.ctx, control_id=control_id, message_time=message_time)

    # --- delivery side ---
    def _deliver_on(self, link: MllpLink):
        async def deliver(message: Outgoing) -> None:
            if message.text is None and not self._render_or_dead_letter(message):
                return
            try:
                ack = await link.send(message.text, message.control_id)
            except SinkError as exc:
                SINK_RETRIES.labels(self.name, "timeout" if "no ACK" in exc.reason else "connection").inc()
                raise
            SINK_MESSAGES.labels(self.name, ack.code).inc()
            SINK_SEND_SECONDS.labels(self.name).observe(ack.seconds)
            self._settle(message, ack)
        return deliver

    def _settle(self, message: Outgoing, ack) -> None:
        if ack.accepted:
            detail = f"ACK {ack.code} MSA-2 {ack.control_id}" + (f": {ack.text}" if ack.text else "")
            self._results.extend(Outcome(e.event_id, self.name, DELIVERED, message.control_id, detail=detail)
                                 for e in message.events)
            count_events(self.name, DELIVERED, len(message.events))
        else:
            self.dead_letter(message.originals, step=self.step, payload=message.text, control_id=message.control_id,
                             reason=f"{self.peer} answered {ack.code} to MSH-10 {message.control_id}: "
                                    f"{ack.text or 'no error text'}")
        self._inflight.difference_update(e.event_id for e in message.events)
        queued(self.name).dec(len(message.events))
        if len(self._results) >= RESULT_WRITE_BATCH:
            self._write_results(raise_errors=False)

    def _stray_ack(self, ack) -> None:
        LATE_ACKS.labels(self.name).inc()
        self.log.info("ignored ACK for another message", msa2=getattr(ack, "control_id", None))

    async def _drain(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._cut()
        self._ledger_away = False
        drained = await wait_lanes(self.lanes, self.config.flush_timeout_s)
        self._write_results()
        if not drained:
            waiting = sum(len(m.events) for lane in self.lanes for m in lane.items)
            stuck = max(self.lanes, key=lambda lane: lane.attempt)
            raise not_accepted_error(self.step, self.peer, waiting, self.config.flush_timeout_s, stuck.last_error,
                                     backoff_delay(self.config.backoff, max(1, stuck.attempt)))

    async def close(self) -> None:
        await super().close()
        if self._timer is not None:
            self._timer.cancel()
        for lane in self.lanes:
            await lane.stop()
        for link in self.links:
            await link.close()
        self._write_results()


def _patient_key(event: Event) -> str:
    return event.patient.patient_id if event.patient else f"device:{event.device.id}"


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
