"""HTTP ingest endpoint (aiohttp): canonical events or simple device JSON, bearer-token auth.

    POST /v1/events                               one canonical event (hub/events.py JSON) or a list
    POST /v1/devices/{device_id}/observations     [{"code", "value", "unit", "time", "system"?,
                                                   "data_class"?, "quality"?}] or {"observations": [...]}
    GET  /healthz                                 unauthenticated liveness

Every POST needs `Authorization: Bearer <token>` (token from connectors.http.token_file or
token_env, compared in constant time) -> else 401. Bodies over max_body_bytes -> 413; not JSON
-> 415/400; a bad item -> 400 naming the field (`observations[2].time`); nothing of a refused
request is emitted. 202 only after `await emit(event)` returned for every event of the request;
emit failing -> 503 with Retry-After, so the client resends (event ids are stable: redelivery is
recognised downstream).

Device JSON: time is epoch seconds or ISO 8601 with an offset; value a number (numeric event) or
a string (text event); event id = device id + system + code + time in ms (+ value for text);
stream = device id/code; seq = time in ms. An unknown device id is kept with type "unknown".
"""

from __future__ import annotations

import hmac
import os
import re
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr, ValidationError

from connectors import metrics
from connectors.base import Emit
from connectors.hl7.inventory import DeviceDirectory
from connectors.mllp import build_server_ssl_context
from hub.errors import DecodeError, RuleError
from hub.events import DataClass, Event, EventKind, Provenance, Quality, make_event_id
from hub.logs import get_logger
from hub.rules.connectors import HttpListener
from hub.rules.models import RuleSet

log = get_logger("connector.http")

DEVICE_FLAGS = frozenset({Quality.INVALID, Quality.QUESTIONABLE, Quality.CALIBRATING, Quality.TEST, Quality.DEMO,
                          Quality.MANUAL})


class DeviceObservation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    code: StrictStr = Field(min_length=1, max_length=128)
    value: StrictInt | StrictFloat | StrictStr
    unit: StrictStr | None = Field(None, max_length=64)
    time: StrictInt | StrictFloat | StrictStr
    system: StrictStr | None = Field(None, max_length=64)
    data_class: DataClass | None = None
    quality: list[Quality] = Field(default_factory=list)


def field_path(loc: tuple, prefix: str) -> str:
    out = prefix
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out.lstrip(".")


def first_error(exc: ValidationError, prefix: str) -> DecodeError:
    err = exc.errors(include_url=False)[0]
    path = field_path(tuple(err["loc"]), prefix)
    return DecodeError(f"{path}: {err['msg']}", field=path)


def as_list(body: object, key: str, max_items: int) -> list:
    items = body.get(key) if isinstance(body, dict) and key in body else body
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list):
        raise DecodeError(f"body must be a JSON object or a list of them (got {type(items).__name__})", field=key)
    if not items:
        raise DecodeError("body holds no items", field=key)
    if len(items) > max_items:
        raise DecodeError(
            f"{len(items)} items in one request; at most {max_items} (connectors.http.max_events_per_request)",
            field=key,
        )
    return items


def events_from_body(body: object, max_items: int) -> list[Event]:
    out = []
    for i, item in enumerate(as_list(body, "events", max_items)):
        try:
            out.append(Event.model_validate(item))
        except ValidationError as exc:
            raise first_error(exc, f"events[{i}]") from None
    return out


def parse_time(value: float | str, path: str) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise DecodeError(f"{path}: '{value[:40]}' is not ISO 8601 (e.g. 2026-11-21T10:00:00Z)", field=path) from None
    if parsed.tzinfo is None:
        raise DecodeError(f"{path}: '{value[:40]}' has no UTC offset (add Z or +01:00)", field=path)
    return parsed.timestamp()


def observations_from_body(
    body: object, device_id: str, directory: DeviceDirectory, *, received_time: float, default_system: str,
    max_items: int, connector: str = "http",
) -> list[Event]:
    known = directory.by_id(device_id) or directory.unknown(device_id)
    provenance = Provenance(connector=connector)
    out = []
    for i, item in enumerate(as_list(body, "observations", max_items)):
        prefix = f"observations[{i}]"
        try:
            obs = DeviceObservation.model_validate(item)
        except ValidationError as exc:
            raise first_error(exc, prefix) from None
        when = parse_time(obs.time, f"{prefix}.time")
        not_device = set(obs.quality) - DEVICE_FLAGS
        if not_device:
            raise DecodeError(
                f"{prefix}.quality: {sorted(q.value for q in not_device)} are set by the hub, not devices "
                f"(allowed: {', '.join(sorted(q.value for q in DEVICE_FLAGS))})",
                field=f"{prefix}.quality",
            )
        numeric = not isinstance(obs.value, str)
        ms = max(0, round(when * 1000))
        system = obs.system or default_system
        parts: list[object] = [known.device.id, system, obs.code, ms]
        if not numeric:
            parts.append(obs.value)
        quality = frozenset(obs.quality)
        data_class = obs.data_class or (DataClass.SPOT_CHECK if Quality.MANUAL in quality else DataClass.VITAL)
        out.append(
            Event(
                event_id=make_event_id(*parts),
                kind=EventKind.NUMERIC if numeric else EventKind.TEXT,
                data_class=data_class,
                device=known.device,
                stream=f"{known.device.id}/{obs.code}",
                seq=ms,
                device_time=when,
                received_time=received_time,
                code_sent=obs.code,
                code_system_sent=system,
                mdc_code=int(obs.code) if system == "MDC" and obs.code.isdigit() else None,
                mdc_ref=obs.code if system == "MDC" and obs.code.startswith("MDC_") else None,
                value_sent=float(obs.value) if numeric else obs.value,
                unit_sent=obs.unit,
                text=None if numeric else obs.value,
                source=known.source,
                quality=quality,
                location=known.location,
                provenance=provenance,
            )
        )
    return out


# ---------------------------------------------------------------- the server (I/O)

ROUTE_EVENTS = "/v1/events"
ROUTE_OBSERVATIONS = "/v1/devices/{device_id}/observations"
_DEVICE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class HttpError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None, headers: dict | None = None):
        self.status, self.code, self.message, self.field, self.headers = status, code, message, field, headers or {}
        super().__init__(message)


def error_response(err: HttpError) -> web.Response:
    body = {"error": {"code": err.code, "message": err.message}}
    if err.field:
        body["error"]["field"] = err.field
    return web.json_response(body, status=err.status, headers=err.headers)


def read_token(config: HttpListener) -> bytes | None:
    """The bearer token from token_file (stripped) or token_env; None only with allow_anonymous."""
    if config.allow_anonymous:
        return None
    if config.token_file:
        try:
            token = Path(config.token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise RuleError(f"connectors.http.token_file {config.token_file}: cannot be read ({exc.strerror})") from None
        where = f"token_file {config.token_file}"
    elif config.token_env:
        token = os.environ.get(config.token_env, "").strip()
        where = f"environment variable {config.token_env} (set it, or connectors.http.token_file)"
    else:
        return None
    if not token:
        raise RuleError(f"connectors.http: the bearer token in {where} is empty")
    return token.encode()


class HttpConnector:
    """HTTP ingest endpoint; 202 only after every event of the request was accepted by emit."""

    def __init__(self, config: HttpListener, directory: DeviceDirectory, *, name: str = "http",
                 clock: Callable[[], float] = time.time):
        self.name = name
        self.config = config
        self.directory = directory
        self._clock = clock
        self._ssl = build_server_ssl_context(config)
        self._token: bytes | None = None
        self._emit: Emit | None = None
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        self.accepted = 0
        self.rejected = 0
        self._emitted = metrics.EVENTS_EMITTED.labels(name)
        self._emit_failures = metrics.EMIT_FAILURES.labels(name)

    @classmethod
    def from_rules(cls, rules: RuleSet, *, devices=None, overrides: dict | None = None, **kwargs) -> HttpConnector:
        """From `connectors.http` (defaults when absent: token from $DEVSYNC_HTTP_TOKEN); `overrides`
        updates fields (e.g. {"port": 8081})."""
        config = rules.connectors.http or HttpListener()
        if overrides:
            config = HttpListener.model_validate({**config.model_dump(), **overrides})
        return cls(config, DeviceDirectory(rules), **kwargs)

    async def start(self, emit: Emit) -> None:
        self._emit = emit
        self._token = read_token(self.config)
        app = web.Application(client_max_size=self.config.max_body_bytes)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_post(ROUTE_EVENTS, self._post_events)
        app.router.add_post(ROUTE_OBSERVATIONS, self._post_observations)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=self.config.drain_timeout_s)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port, ssl_context=self._ssl)
        await site.start()
        self.port = self._runner.addresses[0][1]  # the bound port (port 0 picks a free one)
        log.info("listening", host=self.config.host, port=self.port, tls=self._ssl is not None)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()  # finishes requests in flight, then closes
            self._runner = None
            log.info("stopped", port=self.port, accepted=self.accepted)

    def health(self) -> dict:
        return {"status": "up" if self._runner else "down", "port": self.port, "tls": self._ssl is not None,
                "accepted": self.accepted, "rejected": self.rejected}

    # --- handlers ---
    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "up" if self._emit else "down"})

    async def _post_events(self, request: web.Request) -> web.Response:
        return await self._handle(request, ROUTE_EVENTS, lambda body: events_from_body(
            body, self.config.max_events_per_request))

    async def _post_observations(self, request: web.Request) -> web.Response:
        device_id = request.match_info["device_id"]

        def decode(body: object) -> list[Event]:
            if not _DEVICE_ID.match(device_id):
                raise DecodeError(f"device id '{device_id[:40]}' may only hold letters, digits and . _ : -",
                                  field="device_id")
            return observations_from_body(
                body, device_id, self.directory, received_time=self._clock(),
                default_system=self.config.default_code_system, max_items=self.config.max_events_per_request,
                connector=self.name)

        return await self._handle(request, ROUTE_OBSERVATIONS, decode)

    async def _handle(self, request: web.Request, route: str, decode) -> web.Response:
        try:
            self._authorise(request)
            body = await self._read_json(request)
            try:
                events = decode(body)
            except DecodeError as exc:
                raise HttpError(400, "invalid_body", str(exc), exc.field) from None
            except Exception as exc:  # noqa: BLE001 - a bug answers JSON 500, the server carries on
                log.error("decode failed", route=route, error=type(exc).__name__, detail=str(exc)[:200])
                raise HttpError(500, "internal_error", f"the hub failed to read this request ({type(exc).__name__})",
                                ) from None
            await self._emit_all(events)
        except HttpError as err:
            self.rejected += 1
            metrics.HTTP_REQUESTS.labels(route, str(err.status)).inc()
            if err.status != 401:
                log.warning("request refused", route=route, status=err.status, code=err.code, reason=err.message)
            return error_response(err)
        self.accepted += len(events)
        metrics.HTTP_REQUESTS.labels(route, "202").inc()
        return web.json_response({"accepted": len(events), "event_ids": [e.event_id for e in events]}, status=202)

    def _authorise(self, request: web.Request) -> None:
        if self._token is None:
            return
        header = request.headers.get("Authorization", "")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not presented:
            raise HttpError(401, "unauthorized", "missing bearer token: send 'Authorization: Bearer <token>'",
                            headers={"WWW-Authenticate": 'Bearer realm="devsync"'})
        if not hmac.compare_digest(presented.strip().encode(), self._token):
            raise HttpError(401, "unauthorized", "bearer token not accepted",
                            headers={"WWW-Authenticate": 'Bearer realm="devsync", error="invalid_token"'})

    async def _read_json(self, request: web.Request) -> object:
        limit = self.config.max_body_bytes
        if request.content_type != "application/json":
            raise HttpError(415, "unsupported_media_type",
                            f"Content-Type must be application/json (got '{request.content_type}')")
        too_big = HttpError(413, "payload_too_large",
                            f"request body exceeds {limit} bytes (connectors.http.max_body_bytes)")
        if request.content_length is not None and request.content_length > limit:
            raise too_big
        chunks, size = [], 0
        while True:
            chunk = await request.content.readany()
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                raise too_big
            chunks.append(chunk)
        try:
            return orjson.loads(b"".join(chunks))
        except orjson.JSONDecodeError as exc:
            raise HttpError(400, "invalid_json", f"body is not valid JSON: {exc}") from None

    async def _emit_all(self, events: list[Event]) -> None:
        try:
            for event in events:
                await self._emit(event)
        except Exception as exc:  # noqa: BLE001 - downstream trouble: the client must retry
            self._emit_failures.inc()
            log.error("emit failed", error=type(exc).__name__, detail=str(exc)[:200])
            raise HttpError(503, "unavailable", f"the hub could not accept the events now ({type(exc).__name__}); "
                            "retry later", headers={"Retry-After": "1"}) from None
        self._emitted.inc(len(events))
