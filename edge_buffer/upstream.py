"""What the forwarder needs from an upstream (Kafka or MQTT).

`send` returns only once every message of the batch has a definite outcome: durably
accepted (Kafka delivery report with acks=all, MQTT PUBACK), rejected for good (the message
itself can never be accepted, e.g. larger than the broker allows) or failed. Acked row ids may
be deleted from the buffer; rejected rows move to the buffer's `rejected` table with the
reason (never silently dropped, never blocking the rows behind them); the rest is resent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    row_id: int
    key: str  # the device stream: Kafka partition key
    value: bytes  # Event JSON


@dataclass
class SendResult:
    acked: list[int] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (row id, reason): never acceptable
    error: str | None = None  # set when some messages were not accepted (resent after a reconnect)


class Upstream(Protocol):
    kind: str  # "kafka" | "mqtt" (metric label)
    target: str  # host:port and topic, for logs and /healthz

    async def connect(self) -> None:
        """Make the upstream ready (topic exists / session up); raise UpstreamError when unreachable."""

    async def send(self, batch: list[OutgoingMessage]) -> SendResult:
        """Send a batch and wait for every acknowledgement (or failure)."""

    async def close(self) -> None:
        """Drop the connection; a later connect() starts afresh."""
