"""The connector contract.

A connector turns device traffic into canonical events and hands each to `emit`.
`emit` is async and returns only once the event is durably accepted downstream (queued in
the embedded runtime, acknowledged by Kafka, or written to the edge buffer), so a connector
acknowledges its device (MLLP ACK, MQTT PUBACK, HTTP 202) only after `await emit(event)`.
If emit raises, the connector must NOT acknowledge (negative ACK / retry / 503).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from hub.events import Event

Emit = Callable[[Event], Awaitable[None]]


class Connector(Protocol):
    name: str

    async def start(self, emit: Emit) -> None:
        """Begin listening / polling; returns once running."""

    async def stop(self) -> None:
        """Stop taking new input, finish what is in flight, release resources."""

    def health(self) -> dict:
        """{'status': 'up'|'degraded'|'down', ...details (no PHI)}."""
