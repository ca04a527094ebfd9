"""FHIR R4 sink: transaction Bundles of Observations, batched by size and time.

Each Observation is a conditional create (`ifNoneExist: identifier=urn:devsync:event-id|<id>`),
so a resent Bundle (after a timeout, a 5xx, a hub crash) creates nothing twice. 429 and 5xx
are retried honouring Retry-After; a 401 fetches a new token. A Bundle the server rejects as
bad data (other 4xx) is split and its entries are sent one by one, so only the bad
Observation lands in the DLQ, with the server's OperationOutcome text. Every entry's outcome
(status and Location) goes to the ledger.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from dataclasses import dataclass, field
from urllib.parse import unquote

import aiohttp
import orjson

from hub.errors import SinkError
from hub.events import Event
from hub.rules.models import RuleSet
from hub.rules.sinks import FhirSinkConfig
from hub.sinks.base import Sink, not_accepted_error, wait_lanes
from hub.sinks.http_auth import TokenSource
from hub.sinks.lanes import Lane, backoff_delay, lane_for
from hub.sinks.metrics import SINK_MESSAGES, SINK_RETRIES, SINK_SEND_SECONDS, count_events, queued
from hub.sinks.tls import client_ssl_context
from hub.store import DELIVERED, DUPLICATE, Outcome, Store

RETRIABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
RESULT_WRITE_BATCH = 500
FHIR_JSON = "application/fhir+json"
EVENT_ID_SYSTEM = "urn:devsync:event-id"


@dataclass(slots=True)
class FhirBatch:
    events: list[Event]
    originals: list[Event]
    split: bool = False  # the server rejected the whole Bundle: send entries one by one
    settled: set[int] = field(default_factory=set)  # indexes already answered (split mode)


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as delta-seconds or an HTTP date (RFC 9110 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def entry_positions(bundle: dict) -> dict[str, int]:
    """event id -> position of its Observation entry (by the conditional-create identifier)."""
    positions = {}
    for position, entry in enumerate(bundle.get("entry") or []):
        condition = (entry.get("request") or {}).get("ifNoneExist") or ""
        if EVENT_ID_SYSTEM in condition:
            positions[unquote(condition.rsplit("|", 1)[-1])] = position
    return positions


def outcome_text(body: bytes) -> str:
    """The diagnostics of an OperationOutcome, or the start of the body."""
    try:
        doc = orjson.loads(body)
        issues = doc.get("issue") or doc.get("entry", [{}])[0].get("response", {}).get("outcome", {}).get("issue", [])
        texts = [i.get("diagnostics") or (i.get("details") or {}).get("text") or i.get("code", "") for i in issues]
        if texts:
            return "; ".join(t for t in texts if t)[:2000]
    except (orjson.JSONDecodeError, AttributeError, IndexError, TypeError):
        pass
    return body[:500].decode("utf-8", errors="replace")


class FhirSink(Sink):
    name = "fhir"

    def __init__(self, rules: RuleSet, store: Store, config: FhirSinkConfig, *, name: str | None = None,
                 render_ctx=None):
        super().__init__(rules, store, name=name)
        from hub.sinks.mllp import render_context

        self.config = config
        self.ctx = render_ctx if render_ctx is not None else render_context(rules)
        self.url = config.base_url.rstrip("/")
        self._ssl = client_ssl_context(config.tls, f"sinks.{self.name}")
        self.tokens = TokenSource(config.auth, f"sinks.{self.name}", self._ssl)
        self.lanes = [Lane(f"{self.name}-{i}", self._deliver, config.backoff, config.max_retry_after_s)
                      for i in range(config.connections)]
        self._buffers: list[list[tuple[Event, Event]]] = [[] for _ in self.lanes]
        self._inflight: set[str] = set()
        self._results: list[Outcome] = []
        self._session: aiohttp.ClientSession | None = None
        self._timer: asyncio.TimerHandle | None = None

    # --- add side ---
    def _accept(self, routed: Event, original: Event, *, replay: str | None = None) -> None:
        index = lane_for(routed.patient.patient_id if routed.patient else routed.device.id, len(self.lanes))
        self._buffers[index].append((routed, original, replay))
        queued(self.name).inc()
        if len(self._buffers[index]) >= self.config.batch_size:
            self._cut(index)
        elif self._timer is None:
            try:
                self._timer = asyncio.get_running_loop().call_later(self.config.max_batch_delay_s, self._on_timer)
            except RuntimeError:
                pass  # no loop yet: flush() will cut

    def _on_timer(self) -> None:
        self._timer = None
        for index in range(len(self.lanes)):
            self._cut(index)

    def _cut(self, index: int) -> None:
        entries = list(self._buffers[index])  # taken off the buffer only once the ledger answered
        if not entries:
            return
        states = self.store.delivery_states(self.name, [r.event_id for r, _, _ in entries])
        keep, skipped = [], []
        for routed, original, replay in entries:
            duplicate = self._duplicate_outcome(routed.event_id, states.get(routed.event_id), replay)
            if duplicate is not None:
                skipped.append(duplicate)
            else:
                keep.append((routed, original))
        if skipped:
            self.store.record_outcomes(skipped)
            queued(self.name).dec(len(skipped))
            count_events(self.name, DUPLICATE, len(skipped))
        del self._buffers[index][:len(entries)]
        lane = self.lanes[index]
        for start in range(0, len(keep), self.config.batch_size):
            chunk = keep[start:start + self.config.batch_size]
            self._inflight.update(r.event_id for r, _ in chunk)
            lane.put(FhirBatch([r for r, _ in chunk], [o for _, o in chunk]))
        if keep and _loop_running():
            lane.start()

    # --- delivery side ---
    async def _deliver(self, batch: FhirBatch) -> None:
        if not batch.split:
            pending = [(i, e) for i, e in enumerate(batch.events) if i not in batch.settled]
            bundle = self._bundle(batch, pending)
            if bundle is not None:
                status, body = await self._post(bundle[1])
                if 200 <= status < 300:
                    self._settle_response(batch, pending, bundle[0], body)
                    return
                if len(pending) == 1:
                    self._reject(batch, pending[0][0], status, body)
                    return
                batch.split = True  # bad data somewhere in the Bundle: find it entry by entry
                self.log.warning("bundle rejected, sending entries one by one", status=status, entries=len(pending))
        for i, event in enumerate(batch.events):
            if i in batch.settled:
                continue
            bundle = self._bundle(batch, [(i, event)])
            if bundle is None:
                continue
            status, body = await self._post(bundle[1])
            if 200 <= status < 300:
                self._settle_response(batch, [(i, event)], bundle[0], body)
            else:
                self._reject(batch, i, status, body)

    def _bundle(self, batch: FhirBatch, pending: list[tuple[int, Event]]) -> tuple[dict, bytes] | None:
        """(bundle, its bytes); None when it cannot be built (the culprits are dead-lettered)."""
        from hub.render.fhir import build_transaction_bundle, dumps

        try:
            bundle = build_transaction_bundle([e for _, e in pending], self.ctx)
            return bundle, dumps(bundle)
        except Exception:  # noqa: BLE001 - cannot render: find which entry, dead-letter only it
            if len(pending) > 1:
                batch.split = True
            self._render_singles(batch, pending)
            return None

    def _render_singles(self, batch: FhirBatch, pending: list[tuple[int, Event]]) -> None:
        """Dead-letter the entries that cannot be rendered alone; the split loop sends the rest."""
        from hub.render.fhir import build_transaction_bundle

        for i, event in pending:
            try:
                build_transaction_bundle([event], self.ctx)
            except Exception as exc:  # noqa: BLE001
                self._finish(batch, i)
                self.dead_letter([batch.originals[i]], step="render",
                                 reason=f"{self.step}: cannot build resource: {exc}")

    async def _post(self, body: bytes) -> tuple[int, bytes]:
        session = await self._client()
        headers = {"Content-Type": FHIR_JSON, "Accept": FHIR_JSON, **await self.tokens.header(session)}
        started = time.monotonic()
        try:
            async with session.post(self.url, data=body, headers=headers, ssl=self._ssl) as response:
                payload = await response.read()
                status = response.status
                retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            SINK_RETRIES.labels(self.name, "connection").inc()
            raise SinkError(f"{self.step}: POST {self.url} failed ({type(exc).__name__}: {exc})",
                            retriable=True) from exc
        SINK_MESSAGES.labels(self.name, str(status)).inc()
        SINK_SEND_SECONDS.labels(self.name).observe(time.monotonic() - started)
        if status == 401:
            self.tokens.invalidate()
        if status in RETRIABLE_STATUS or status in (401, 403):
            SINK_RETRIES.labels(self.name, str(status)).inc()
            raise SinkError(f"{self.step}: {self.url} answered {status}: {outcome_text(payload)[:300]}",
                            retriable=True, retry_after=retry_after if status in (429, 503) else None)
        return status, payload

    def _settle_response(self, batch: FhirBatch, pending: list[tuple[int, Event]], bundle: dict, body: bytes) -> None:
        try:
            entries = orjson.loads(body).get("entry") or []
        except (orjson.JSONDecodeError, AttributeError):
            entries = []
        positions = entry_positions(bundle)
        for fallback, (i, event) in enumerate(pending):
            position = positions.get(event.event_id, fallback)
            response = (entries[position].get("response") or {}) if position < len(entries) else {}
            status = str(response.get("status", "200"))
            if status[:1] == "2":
                detail = f"{status} {response.get('location', '')}".strip()
                self._results.append(Outcome(event.event_id, self.name, DELIVERED, detail=detail))
                count_events(self.name, DELIVERED)
                self._finish(batch, i)
            else:
                code = status.split()[0]
                self._reject(batch, i, int(code) if code.isdigit() else 0, orjson.dumps(response.get("outcome") or {}))
        if len(self._results) >= RESULT_WRITE_BATCH:
            self._write_results(raise_errors=False)

    def _reject(self, batch: FhirBatch, i: int, status: int, body: bytes) -> None:
        self._finish(batch, i)
        self.dead_letter([batch.originals[i]], step=self.step,
                         reason=f"{self.url} answered {status}: {outcome_text(body)}")

    def _finish(self, batch: FhirBatch, i: int) -> None:
        batch.settled.add(i)
        self._inflight.discard(batch.events[i].event_id)
        queued(self.name).dec()

    async def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(total=self.config.request_timeout_s)
            self._session = aiohttp.ClientSession(timeout=timeout, json_serialize=lambda o: orjson.dumps(o).decode())
        return self._session

    async def _drain(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for index in range(len(self.lanes)):
            self._cut(index)
        drained = await wait_lanes(self.lanes, self.config.flush_timeout_s)
        self._write_results()
        if not drained:
            waiting = sum(len(b.events) - len(b.settled) for lane in self.lanes for b in lane.items)
            stuck = max(self.lanes, key=lambda lane: lane.attempt)
            raise not_accepted_error(self.step, self.url, waiting, self.config.flush_timeout_s, stuck.last_error,
                                     backoff_delay(self.config.backoff, max(1, stuck.attempt)))

    async def close(self) -> None:
        await super().close()
        if self._timer is not None:
            self._timer.cancel()
        for lane in self.lanes:
            await lane.stop()
        if self._session is not None:
            await self._session.close()
        self._write_results()


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
