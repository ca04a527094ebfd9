"""The checkpoint both long-running loops share (the embedded runtime and `devsync deliver`).

flush_side_by_side(sinks): every sink's flush() at once (the alarm manager does not wait for
the EHR's ACKs); the first failure is raised once every flush has ended, so none is left half-way.
write_fates(fates): the store writes a loop deferred to its checkpoint (parked, dead letters),
in order, each taken off only once written, so a retry after a failure writes none twice.
retry_until_done(checkpoint, log): run the checkpoint, and while it fails because a sink's peer
(retriable SinkError) or the database is away, log it, wait and run it again; the caller takes no
new input meanwhile, and the sinks and the store keep everything they were given.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Iterable

from hub.errors import SinkError
from hub.store import DB_UNAVAILABLE

CHECKPOINT_RETRY_MAX_S = 5.0


async def flush_side_by_side(sinks: Iterable) -> None:
    outcomes = await asyncio.gather(*(sink.flush() for sink in sinks), return_exceptions=True)
    failure = next((o for o in outcomes if isinstance(o, BaseException)), None)
    if failure is not None:
        raise failure


def write_fates(fates: deque[Callable[[], object]]) -> None:
    while fates:
        fates[0]()
        fates.popleft()


async def retry_until_done(checkpoint: Callable[[], Awaitable[None]], log) -> None:
    failures = 0
    while True:
        try:
            await checkpoint()
        except (SinkError, *DB_UNAVAILABLE) as exc:
            if isinstance(exc, SinkError) and not exc.retriable:
                raise
            failures += 1
            delay = checkpoint_retry_delay(exc, failures)
            log.error("checkpoint failed: input paused, retrying", attempt=failures, retry_in_s=round(delay, 3),
                      error=f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
            await asyncio.sleep(delay)
            continue
        if failures:
            log.info("checkpoint succeeded again: input resumed", failed_attempts=failures)
        return


def checkpoint_retry_delay(exc: Exception, failures: int) -> float:
    """The sink's retry_after when it gives one, else 0.5 s doubling up to CHECKPOINT_RETRY_MAX_S."""
    retry_after = getattr(exc, "retry_after", None)
    return min(CHECKPOINT_RETRY_MAX_S, retry_after or 0.5 * 2 ** (failures - 1))
