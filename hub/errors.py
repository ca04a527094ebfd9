"""The hub's exception tree.

HubError
  RuleError          rule files are invalid (never retried; fix the rules)
  DecodeError        bad input data (goes to the DLQ / a negative ACK with the reason)
  SinkError          delivery failed; `retriable` tells infrastructure trouble from data trouble
  ParkedError        event cannot proceed yet (e.g. no patient association)
"""

from __future__ import annotations


class HubError(Exception):
    """Base of every error the hub raises on purpose."""


class RuleError(HubError):
    """Invalid rule files or rule-driven processing error."""


class DecodeError(HubError):
    """Input that cannot be decoded; carries the reason and, when known, the field."""

    def __init__(self, reason: str, *, field: str | None = None):
        self.reason = reason
        self.field = field
        super().__init__(f"{field}: {reason}" if field else reason)


class SinkError(HubError):
    def __init__(self, reason: str, *, retriable: bool, retry_after: float | None = None):
        self.reason = reason
        self.retriable = retriable
        self.retry_after = retry_after
        super().__init__(reason)


class ParkedError(HubError):
    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)
