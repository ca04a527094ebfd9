"""Errors of the edge buffer (all under HubError)."""

from __future__ import annotations

from hub.errors import HubError


class EdgeError(HubError):
    """Base of the edge gateway's errors."""


class QueueFullError(EdgeError):
    """The buffer is at its quota and nothing more may be shed: the connector must not acknowledge its device."""

    def __init__(self, reason: str, *, retry_after: float = 1.0):
        self.reason = reason
        self.retry_after = retry_after
        super().__init__(reason)


class QueueCorruptError(EdgeError):
    """The buffer file failed `PRAGMA integrity_check`; the gateway will not start on it."""


class UpstreamError(EdgeError):
    """The upstream (Kafka or MQTT) is unreachable or refused a batch; the batch is resent after a backoff."""
