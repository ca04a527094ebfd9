"""Polling connector: ask each device for its status on a schedule, turn answers into events.

Protocols `poll-tcp` (a serial-style line protocol: send `GET STATUS\\n`, read one line of
`KEY=VALUE;KEY=VALUE`) and `poll-http` (GET a URL answering a flat JSON object of the same
keys). Per device: interval with jitter (from the sync profile or the device's settings), a
token-bucket rate limit (an infusion pump takes at most one request per 10 s), a timeout,
exponential backoff with a cap after failures, and staleness per data class (the profile's
`staleness_limit_s` / `staleness_action`). Every record carries the device time, the received
time and a per-stream monotonic `seq`.

The pure pieces (parsing, record -> events, token bucket, backoff, staleness) take `now`
as an argument; `DevicePoller` does the I/O and takes `clock`/`sleep`/`rng` so unit tests
drive it with fake time. The decoding of answers and building of events lives in
`connectors.poll_records`.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Literal

import aiohttp
from pydantic import BaseModel, ConfigDict, Field

from connectors import metrics
from connectors.base import Emit
from connectors.poll_records import (
    DeviceState,
    FieldSpec,
    build_events,
    check_staleness,
    parse_status_json,
    parse_status_line,
    record_from_values,
    staleness_limits,
)
from connectors.registry import connector_settings, rule_location
from hub.errors import DecodeError, HubError, RuleError
from hub.logs import get_logger
from hub.rules.devices import DeviceEntry, Protocol
from hub.rules.models import RuleSet

log = get_logger("connector.poll")

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class PollError(HubError):
    """A poll got no usable answer; `outcome` is the metric label (timeout, refused, http-error, io-error)."""

    def __init__(self, outcome: str, reason: str):
        self.outcome = outcome
        self.reason = reason
        super().__init__(reason)


class PollSettings(BaseModel):
    """Settings of one polled device: `device_types[].connector` merged with `devices[].connector`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field("127.0.0.1", description="poll-tcp: device (or serial-to-TCP bridge) host.")
    port: int | None = Field(None, ge=1, le=65535, description="poll-tcp: TCP port (required for poll-tcp).")
    url: str | None = Field(None, description="poll-http: status URL (required for poll-http).")
    command: str = Field("GET STATUS", description="poll-tcp: request line sent each poll (a newline is added).")
    timeout_s: float = Field(2.0, gt=0, description="Give up on an answer after this long (s).")
    interval_s: float | None = Field(None, gt=0, description="Poll interval (s); default: the profile's poll_interval_s.")
    jitter_s: float | None = Field(None, ge=0, description="Random 0..jitter added to each interval; default: profile.")
    rate_limit_per_s: float | None = Field(None, gt=0, description="Max requests per second; default: profile.")
    burst: int = Field(1, ge=1, description="Token-bucket size: requests allowed back to back.")
    backoff_initial_s: float = Field(1.0, gt=0, description="First retry delay after a failed poll (s).")
    backoff_factor: float = Field(2.0, ge=1, description="Each further failure multiplies the delay by this.")
    backoff_max_s: float = Field(60.0, gt=0, description="Cap of the retry delay (s).")
    time_field: str = Field("TIME", description="Key holding the device time (epoch s); absent = received time.")
    fields: dict[str, FieldSpec] = Field(default_factory=dict, description="Meaning of each key the device sends.")
    unknown_fields: Literal["emit", "ignore"] = Field(
        "emit", description="Keys not in `fields`: emit them with the key as vendor code, or ignore them."
    )
    max_line_bytes: int = Field(8192, ge=64, description="poll-tcp: longer answers are rejected.")


DEFAULT_INTERVAL_S = 10.0


# ---------- pure scheduling pieces ----------


class TokenBucket:
    """At most `rate` requests per second on average, `burst` back to back."""

    def __init__(self, rate: float | None, burst: int, now: float):
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.updated = now

    def _refill(self, now: float) -> None:
        if self.rate is not None:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def wait_time(self, now: float) -> float:
        """Seconds until a request is allowed (0 = now)."""
        if self.rate is None:
            return 0.0
        self._refill(now)
        if self.tokens >= 1.0 - 1e-6:  # float slack: epoch-second clocks cannot advance by 1e-12 s
            return 0.0
        return max(1e-3, (1.0 - self.tokens) / self.rate)

    def take(self, now: float) -> None:
        if self.rate is None:
            return
        self._refill(now)
        self.tokens -= 1.0


def backoff_delay(failures: int, initial: float, factor: float, cap: float) -> float:
    """Delay before the next try after `failures` consecutive failures (>= 1)."""
    return min(cap, initial * factor ** max(0, failures - 1))


def next_poll_delay(failures: int, interval: float, jitter: float, settings: PollSettings, rng: random.Random) -> float:
    if failures:
        return backoff_delay(failures, settings.backoff_initial_s, settings.backoff_factor, settings.backoff_max_s)
    return interval + (rng.uniform(0.0, jitter) if jitter > 0 else 0.0)


# ---------- transports (I/O) ----------


class LineTransport:
    """poll-tcp: one TCP connection per poll, one request line, one answer line."""

    def __init__(self, host: str, port: int, command: str, timeout_s: float, max_line_bytes: int):
        self.host, self.port, self.command = host, port, command
        self.timeout_s, self.max_line_bytes = timeout_s, max_line_bytes
        self.where = f"tcp://{host}:{port}"

    async def fetch(self) -> dict[str, str]:
        try:
            line = await asyncio.wait_for(self._exchange(), self.timeout_s)
        except TimeoutError:
            raise PollError("timeout", f"{self.where}: no answer within {self.timeout_s} s") from None
        except ConnectionRefusedError:
            raise PollError("refused", f"{self.where}: connection refused") from None
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            raise PollError("io-error", f"{self.where}: {type(exc).__name__}: {exc}") from None
        return parse_status_line(line)

    async def _exchange(self) -> bytes:
        reader, writer = await asyncio.open_connection(self.host, self.port, limit=self.max_line_bytes)
        try:
            writer.write(self.command.encode() + b"\n")
            await writer.drain()
            line = await reader.readuntil(b"\n")
        finally:
            writer.close()
        return line

    async def close(self) -> None:
        return None


class HttpTransport:
    """poll-http: GET the status URL, expect 200 and a flat JSON object."""

    def __init__(self, url: str, timeout_s: float):
        self.url, self.timeout_s = url, timeout_s
        self.where = url
        self._session: aiohttp.ClientSession | None = None

    async def fetch(self) -> dict[str, str]:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        try:
            async with self._session.get(self.url) as response:
                body = await response.read()
                if response.status != 200:
                    raise PollError("http-error", f"GET {self.url}: HTTP {response.status} (expected 200)")
        except TimeoutError:
            raise PollError("timeout", f"GET {self.url}: no answer within {self.timeout_s} s") from None
        except aiohttp.ClientConnectorError as exc:
            raise PollError("refused", f"GET {self.url}: cannot connect ({exc.os_error})") from None
        except aiohttp.ClientError as exc:
            raise PollError("io-error", f"GET {self.url}: {type(exc).__name__}: {exc}") from None
        return parse_status_json(body)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


# ---------- one device ----------


async def real_sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


class DevicePoller:
    """Polls one device until cancelled; emits its records and staleness markers."""

    def __init__(
        self,
        state: DeviceState,
        transport: LineTransport | HttpTransport,
        settings: PollSettings,
        *,
        interval_s: float,
        jitter_s: float,
        rate_limit_per_s: float | None,
        limits: dict,
        connector: str,
        clock: Clock = time.time,
        sleep: Sleep = real_sleep,
        rng: random.Random | None = None,
        on_error: Callable[[str, Exception], None] | None = None,
    ):
        self.state, self.transport, self.settings = state, transport, settings
        self.interval_s, self.jitter_s = interval_s, jitter_s
        self.limits, self.connector = limits, connector
        self.clock, self.sleep = clock, sleep
        self.rng = rng or random.Random()
        self.on_error = on_error
        self.bucket = TokenBucket(rate_limit_per_s, settings.burst, clock())
        self.failures = 0
        self.polls = 0
        self.last_ok: float | None = None
        self.last_error: str | None = None
        self.request_times: list[float] = []  # kept short: for health and tests

    async def poll_once(self) -> list:
        """One request (after the rate limit allows it) -> events, including staleness markers."""
        wait = self.bucket.wait_time(self.clock())
        while wait > 0:
            await self.sleep(wait)
            wait = self.bucket.wait_time(self.clock())
        started = self.clock()
        self.bucket.take(started)
        self.request_times = (self.request_times + [started])[-50:]
        self.polls += 1
        events = []
        try:
            values = await self.transport.fetch()
            received = self.clock()
            record = record_from_values(values, self.settings.time_field, received)
            events = build_events(self.state, record, self.settings, received)
        except (PollError, DecodeError) as exc:
            self._failed(exc)
        else:
            self.failures, self.last_ok, self.last_error = 0, received, None
            metrics.POLL_REQUESTS.labels(self.connector, "ok").inc()
            metrics.POLL_SECONDS.labels(self.connector).observe(max(0.0, received - started))
        stale = check_staleness(self.state, self.limits, self.clock())
        for event in stale:
            metrics.STALE_VALUES.labels(self.connector, "flag-missing" if event.value_sent is None else "flag-stale").inc()
        return events + stale

    def _failed(self, exc: Exception) -> None:
        self.failures += 1
        self.last_error = str(exc)
        outcome = exc.outcome if isinstance(exc, PollError) else "decode-error"
        metrics.POLL_REQUESTS.labels(self.connector, outcome).inc()
        log.warning("poll failed", device=self.state.device.id, outcome=outcome, reason=str(exc),
                    failures=self.failures)
        if self.on_error is not None:
            self.on_error(self.state.device.id, exc)

    def next_delay(self) -> float:
        return next_poll_delay(self.failures, self.interval_s, self.jitter_s, self.settings, self.rng)

    async def run(self, emit: Emit) -> None:
        while True:
            for event in await self.poll_once():
                await emit_with_retry(emit, event, self.connector, self.sleep)
            await self.sleep(self.next_delay())

    def health(self) -> dict:
        return {
            "device": self.state.device.id,
            "polls": self.polls,
            "consecutive_failures": self.failures,
            "last_ok": self.last_ok,
            "last_error": self.last_error,
        }


async def emit_with_retry(emit: Emit, event, connector: str, sleep: Sleep, cap_s: float = 30.0) -> None:
    """Emit; while downstream refuses, retry with backoff (the caller's task is cancelled on stop)."""
    failures = 0
    while True:
        try:
            await emit(event)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any downstream refusal is retried, never dropped
            failures += 1
            metrics.EMIT_FAILURES.labels(connector).inc()
            log.warning("emit failed; retrying", event_id=event.event_id, error=type(exc).__name__, tries=failures)
            await sleep(backoff_delay(failures, 0.1, 2.0, cap_s))
        else:
            metrics.EVENTS_EMITTED.labels(connector).inc()
            return


# ---------- the connector ----------


def profile_numbers(rules: RuleSet, entry: DeviceEntry, settings: PollSettings) -> tuple[float, float, float | None]:
    """(interval, jitter, rate limit) for a device: its settings first, else the tightest profile values."""
    dtype = rules.device_type(entry.type)
    profiles = [rules.profile(dc) for dc in (dtype.data_classes if dtype else [])]
    intervals = [p.poll_interval_s for p in profiles if p.poll_interval_s]
    rates = [p.rate_limit_per_s for p in profiles if p.rate_limit_per_s]
    jitters = [p.poll_jitter_s for p in profiles if p.poll_interval_s]
    interval = settings.interval_s or (min(intervals) if intervals else DEFAULT_INTERVAL_S)
    jitter = settings.jitter_s if settings.jitter_s is not None else (max(jitters) if jitters else 0.0)
    rate = settings.rate_limit_per_s or (min(rates) if rates else None)
    return interval, jitter, rate


def make_transport(protocol: Protocol, settings: PollSettings, device_id: str) -> LineTransport | HttpTransport:
    if protocol is Protocol.POLL_TCP:
        if settings.port is None:
            raise RuleError(f"device {device_id}: poll-tcp needs devices[{device_id}].connector.port (and host)")
        return LineTransport(settings.host, settings.port, settings.command, settings.timeout_s, settings.max_line_bytes)
    if settings.url is None:
        raise RuleError(f"device {device_id}: poll-http needs devices[{device_id}].connector.url")
    return HttpTransport(settings.url, settings.timeout_s)


class PollingConnector:
    """All polled devices of a rule set (poll-tcp and poll-http), one task per device."""

    name = "poll"

    def __init__(self, pollers: list[DevicePoller]):
        self.pollers = pollers
        self.errors: deque[tuple[str, str]] = deque(maxlen=200)  # (device, reason), newest last
        for poller in pollers:
            user_callback = poller.on_error
            poller.on_error = self._recorder(user_callback)
        self._tasks: list[asyncio.Task] = []

    def _recorder(self, user_callback):
        def record(device_id: str, exc: Exception) -> None:
            self.errors.append((device_id, str(exc)))
            if user_callback is not None:
                user_callback(device_id, exc)

        return record

    @classmethod
    def from_rules(
        cls,
        rules: RuleSet,
        *,
        devices: list[DeviceEntry],
        overrides: dict | None = None,
        clock: Clock = time.time,
        sleep: Sleep = real_sleep,
        rng: random.Random | None = None,
        on_error: Callable[[str, Exception], None] | None = None,
    ) -> PollingConnector:
        pollers = []
        for entry in devices:
            dtype = rules.device_type(entry.type)
            settings = connector_settings(PollSettings, rules, entry)
            try:
                transport = make_transport(dtype.protocol, settings, entry.id)
            except RuleError as exc:
                raise RuleError(f"{rule_location(rules, entry)}{exc}") from None
            interval, jitter, rate = profile_numbers(rules, entry, settings)
            state = DeviceState.for_device(entry, dtype, stream=f"{entry.id}/poll",
                                           connector=dtype.protocol.value, now=clock())
            pollers.append(DevicePoller(
                state, transport, settings, interval_s=interval, jitter_s=jitter, rate_limit_per_s=rate,
                limits=staleness_limits(rules), connector=dtype.protocol.value,
                clock=clock, sleep=sleep, rng=rng, on_error=on_error,
            ))
        return cls(pollers)

    async def start(self, emit: Emit) -> None:
        self._tasks = [asyncio.create_task(p.run(emit), name=f"poll:{p.state.device.id}") for p in self.pollers]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for poller in self.pollers:
            await poller.transport.close()

    def health(self) -> dict:
        devices = [p.health() for p in self.pollers]
        failing = sum(1 for d in devices if d["consecutive_failures"])
        status = "up" if not failing else ("down" if failing == len(devices) else "degraded")
        return {"status": status, "connector": self.name, "devices": devices}
