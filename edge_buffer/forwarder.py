"""The forwarder: buffer -> upstream, in order, with reconnect and exponential backoff.

One loop, numbered steps (docs/edge-gateway.md, "Commit path"):
  1. connect     the upstream (topic created / MQTT session up); on failure back off and retry
  2. lease       the next rows from the buffer (alarm lane first, insert order per lane); with a
                 backlog the next batch is read while the current one is in flight
  3. mark        rows from the backlog (buffered before this connection came up) or older than
                 replay_age_s get provenance.replayed = true and the `replayed` quality flag;
                 original times and seq are never touched
  4. send        and wait for each message's durable acknowledgement
  5. ack         delete the acknowledged rows (one transaction); rows the upstream can never accept
                 (e.g. too large) move to the `rejected` table with the reason, so they block nothing
  6. on failure  release the rest (pending again, same order), drop the connection, back off
A crash anywhere loses nothing: un-deleted rows are pending on restart and are resent; the
hub dedupes by event id.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable

import orjson

from edge_buffer.errors import UpstreamError
from edge_buffer.metrics import EdgeMetrics
from edge_buffer.queue import EdgeQueue, QueuedEvent
from edge_buffer.upstream import OutgoingMessage, Upstream
from hub.events import Quality
from hub.logs import get_logger
from hub.rules.edge import EdgeRules

log = get_logger("edge.forward")

StoreCall = Callable[..., Awaitable]


_NOT_REPLAYED_TAIL = b'"replayed":false}}'
_QUALITY = b'"quality":['
_REPLAYED_FLAG = b'"' + Quality.REPLAYED.value.encode() + b'"'


def mark_replayed(payload: bytes) -> bytes:
    """The same event JSON with provenance.replayed = true and the `replayed` quality flag.

    Fast path on the bytes Event.to_json() writes (provenance is the last field, replayed its last
    key; the first unescaped `"quality":[` is the event's own key, no string can hold it unescaped);
    anything else goes through a full parse.
    """
    at = payload.find(_QUALITY)
    if payload.endswith(_NOT_REPLAYED_TAIL) and at >= 0:
        start = at + len(_QUALITY)
        if payload.startswith(b"]", start):
            flags = _REPLAYED_FLAG
        elif payload.find(_REPLAYED_FLAG, start, payload.find(b"]", start)) >= 0:
            flags = b""
        else:
            flags = _REPLAYED_FLAG + b","
        return payload[:start] + flags + payload[start:-len(_NOT_REPLAYED_TAIL)] + b'"replayed":true}}'
    return _mark_replayed_parsed(payload)


def _mark_replayed_parsed(payload: bytes) -> bytes:
    data = orjson.loads(payload)
    data["provenance"]["replayed"] = True
    quality = data.get("quality") or []
    if Quality.REPLAYED.value not in quality:
        data["quality"] = [*quality, Quality.REPLAYED.value]
    return orjson.dumps(data)


def prepare_batch(rows: list[QueuedEvent], *, backlog_mark: int, now: float,
                  replay_age_s: float) -> tuple[list[OutgoingMessage], set[int]]:
    """Outgoing messages for leased rows, and the row ids sent as replays (pure)."""
    out: list[OutgoingMessage] = []
    replayed: set[int] = set()
    for row in rows:
        value = row.payload
        if row.row_id <= backlog_mark or now - row.received_time > replay_age_s:
            value = mark_replayed(value)
            replayed.add(row.row_id)
        out.append(OutgoingMessage(row.row_id, row.stream, value))
    return out, replayed


def next_backoff(current: float, settings: EdgeRules, rng: random.Random) -> float:
    """Exponential growth with +-20 % jitter, capped at backoff_max_s."""
    grown = min(settings.backoff_max_s, current * settings.backoff_multiplier)
    return grown * (0.8 + 0.4 * rng.random())


class Forwarder:
    def __init__(self, queue: EdgeQueue, store: StoreCall, upstream: Upstream, settings: EdgeRules,
                 metrics: EdgeMetrics, *, clock: Callable[[], float] = time.time, rng: random.Random | None = None,
                 backlog_mark: int = -1):
        self.queue = queue
        self.store = store  # runs a queue method on the store thread
        self.upstream = upstream
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self.rng = rng or random.Random()
        self.connected = False
        self.last_error: str | None = None
        self.wakeup = asyncio.Event()  # new rows were committed
        self._stopped = asyncio.Event()
        self._stopping = False
        self._backlog_mark = backlog_mark  # rows with id <= this are sent as replays; -1: read at run()
        self._outage = False  # a connect or a batch failed since the last connection came up
        self._backoff = settings.backoff_initial_s

    def poke(self) -> None:
        self.wakeup.set()

    async def run(self) -> None:
        self._set_up(False)
        if self._backlog_mark < 0:  # rows recovered from the file are the first backlog
            self._backlog_mark = await self.store(self.queue.max_row_id)
        rows: list[QueuedEvent] = []  # the next batch, when it was read while the last one was in flight
        while not self._stopping:
            if not self.connected and not await self._connect():
                await self._pause(self._backoff)
                self._backoff = next_backoff(self._backoff, self.settings, self.rng)
                continue
            if not rows:
                self.wakeup.clear()  # before the lease, so a commit racing it is not missed
                rows = await self.store(self.queue.lease, self.settings.forward_batch_events)
            if not rows:
                await _wait(self.wakeup, 1.0)
                continue
            rows = await self._forward(rows)

    async def stop(self) -> None:
        self._stopping = True
        self._stopped.set()
        self.wakeup.set()

    async def _connect(self) -> bool:
        try:
            await self.upstream.connect()
        except UpstreamError as exc:
            self._fail(str(exc), "connect")
            return False
        # 1. the backlog is a replay: what the buffer held at start (recovered from disk), and after an
        #    outage everything buffered before this connection came up
        if self._outage:
            self._backlog_mark = await self.store(self.queue.max_row_id)
        self._outage = False
        self._backoff = self.settings.backoff_initial_s
        self._set_up(True)
        log.info("upstream connected", target=self.upstream.target, backlog_to_row=self._backlog_mark)
        return True

    async def _forward(self, rows: list[QueuedEvent]) -> list[QueuedEvent]:
        """Send one batch; returns the next batch when a full one was read while this one was in flight."""
        started = time.monotonic()
        size = self.settings.forward_batch_events
        messages, replayed = prepare_batch(rows, backlog_mark=self._backlog_mark, now=self.clock(),
                                           replay_age_s=self.settings.replay_age_s)
        sending = asyncio.ensure_future(self.upstream.send(messages))
        # backlog: read the next batch while the upstream works on this one (sent only after it)
        following = await self.store(self.queue.lease, size) if len(rows) == size else []
        try:
            result = await sending
        except UpstreamError as exc:
            result = None
            error = str(exc)
        else:
            error = result.error
        acked = await self.store(self.queue.ack, result.acked) if result else 0
        if result and result.rejected:
            await self._reject(rows, result.rejected)
        log.debug("batch sent", rows=len(rows), acked=acked, seconds=round(time.monotonic() - started, 4))
        if acked:
            replays = sum(1 for row_id in result.acked if row_id in replayed)
            self.metrics.forwarded.labels("true").inc(replays)
            self.metrics.forwarded.labels("false").inc(acked - replays)
            self.metrics.replay_rate.set(replays / max(time.monotonic() - started, 1e-6))
        if error is None:
            return following
        released = await self.store(self.queue.release)  # this batch's rest and the one read ahead
        log.warning("batch not acknowledged: resending after backoff", target=self.upstream.target,
                    acked=acked, resend=released)
        self._fail(error, "send")
        await self.upstream.close()
        await self._pause(self._backoff)
        return []

    async def _reject(self, rows: list[QueuedEvent], rejected: list[tuple[int, str]]) -> None:
        moved = await self.store(self.queue.reject, rejected, self.clock())
        self.metrics.rejected.labels(self.upstream.kind).inc(moved)
        by_id = {row.row_id: row for row in rows}
        for row_id, reason in rejected:
            row = by_id.get(row_id)
            log.error("upstream refused an event for good; kept in the buffer's rejected table",
                      event_id=row.event_id if row else "?", stream=row.stream if row else "?", reason=reason)

    def _fail(self, error: str, step: str) -> None:
        self._outage = True
        self.metrics.upstream_failures.labels(self.upstream.kind).inc()
        if self.connected or self.last_error is None:
            log.warning("upstream unavailable", target=self.upstream.target, step=step, error=error)
        self.last_error = error
        self._set_up(False)

    def _set_up(self, up: bool) -> None:
        self.connected = up
        self.metrics.upstream_up.labels(self.upstream.kind).set(1 if up else 0)

    async def _pause(self, seconds: float) -> None:
        """Backoff: new rows do not cut it short, stop() does."""
        await _wait(self._stopped, seconds)


async def _wait(event: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(event.wait(), timeout=seconds)
    except TimeoutError:
        pass
