"""Ordered delivery lanes: one item in flight per lane, retried in place until it is answered.

A sink partitions its work over lanes by patient, so one patient's messages keep their order
while other patients flow on other lanes. `deliver(item)` either returns (the peer answered:
accepted or rejected, the sink has recorded which) or raises a retriable SinkError; the lane
then waits (the error's retry_after, else exponential backoff) and delivers the same item again.
"""

from __future__ import annotations

import asyncio
import zlib
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from hub.errors import SinkError
from hub.logs import get_logger
from hub.rules.sinks import BackoffConfig

T = TypeVar("T")
log = get_logger("sink.lanes")


def lane_for(key: str, lanes: int) -> int:
    """Stable partition of a key (patient id) over `lanes` (same key, same lane, every run)."""
    return zlib.crc32(key.encode()) % lanes


def backoff_delay(backoff: BackoffConfig, attempt: int) -> float:
    return min(backoff.max_s, backoff.initial_s * backoff.multiplier ** max(0, attempt - 1))


class Lane(Generic[T]):
    def __init__(self, name: str, deliver: Callable[[T], Awaitable[None]], backoff: BackoffConfig,
                 max_retry_after_s: float = 300.0):
        self.name = name
        self.items: deque[T] = deque()
        self._deliver = deliver
        self._backoff = backoff
        self._max_retry_after = max_retry_after_s
        self._task: asyncio.Task | None = None
        self._stopping = False
        self._wake: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None
        self.attempt = 0
        self.last_error: str | None = None

    def put(self, item: T) -> None:
        self.items.append(item)
        if self._wake is not None:
            self._wake.set()
            self._idle.clear()

    def start(self) -> None:
        """Start the worker (needs a running loop); safe to call again."""
        if self._task is None or self._task.done():
            self._wake, self._idle = asyncio.Event(), asyncio.Event()
            if self.items:
                self._wake.set()
            else:
                self._idle.set()
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)

    @property
    def busy(self) -> bool:
        return bool(self.items)

    async def wait_idle(self) -> None:
        self.start()
        while self.items:
            await self._idle.wait()

    async def _run(self) -> None:
        task = asyncio.current_task()
        while True:
            # Python 3.11's wait_for can swallow a cancellation that races with its result; the
            # task still counts it as pending, so leave here rather than retry forever.
            if self._stopping or task.cancelling():
                return
            if not self.items:
                self._idle.set()
                await self._wake.wait()
                self._wake.clear()
                continue
            self._idle.clear()
            item = self.items[0]
            try:
                await self._deliver(item)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a lane never dies; unknown errors are retried
                retry_after = exc.retry_after if isinstance(exc, SinkError) else None
                self.attempt += 1
                self.last_error = exc.reason if isinstance(exc, SinkError) else f"{type(exc).__name__}: {exc}"
                delay = min(retry_after, self._max_retry_after) if retry_after else \
                    backoff_delay(self._backoff, self.attempt)
                log.info("retrying", lane=self.name, attempt=self.attempt, delay_s=round(delay, 3), error=self.last_error)
                await asyncio.sleep(delay)
                continue
            self.items.popleft()
            self.attempt = 0
            self.last_error = None

    async def stop(self) -> None:
        if self._task is not None:
            self._stopping = True
            self._wake.set()
            while not self._task.done():
                self._task.cancel()
                await asyncio.wait({self._task}, timeout=0.5)
            if not self._task.cancelled() and self._task.exception() is not None:
                log.warning("lane stopped with an error", lane=self.name, error=str(self._task.exception()))
            self._task = None
            self._stopping = False
