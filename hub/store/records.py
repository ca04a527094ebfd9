"""Plain records the store reads and writes (no SQL here)."""

from __future__ import annotations

from dataclasses import dataclass, field

# Fates of one observation at one sink (delivery.status / ledger.status)
HELD = "held"  # held back by the charting policy (not sent, on purpose)
SENT = "sent"  # handed to the peer, outcome not known yet (write-ahead; resend reuses control_id)
DELIVERED = "delivered"  # the peer accepted it (ACK AA / 2xx entry)
DLQ = "dlq"  # dead-lettered with a reason
PARKED = "parked"  # cannot proceed yet (no patient association), before routing
RELEASED = "released"  # a parked event went on
REPLAYED = "replayed"  # a DLQ entry was replayed (ledger history only)
DUPLICATE = "duplicate"  # a redelivered event already delivered (ledger history only)

FINAL = frozenset({HELD, DELIVERED, DLQ})
PRE_ROUTING_SINK = "hub"  # ledger rows written before any sink was chosen (parking)


@dataclass(frozen=True, slots=True)
class Outcome:
    """One fate of one event at one sink."""

    event_id: str
    sink: str
    status: str
    control_id: str | None = None
    reason: str | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class DeliveryState:
    status: str
    control_id: str | None
    reason: str | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: int
    event_id: str
    sink: str
    step: str
    reason: str
    event: str  # the event JSON as it reached the sink
    payload: str | None  # the rendered message when there was one (HL7 text, FHIR JSON)
    status: str  # open | replayed | failed
    created_at: float
    replayed_at: float | None = None
    replay_result: str | None = None


@dataclass(frozen=True, slots=True)
class SinkCounts:
    """in = delivered + held + dlq + sent (in flight) for one sink."""

    sink: str
    by_status: dict[str, int] = field(default_factory=dict)

    @property
    def total_in(self) -> int:
        return sum(self.by_status.values())

    def get(self, status: str) -> int:
        return self.by_status.get(status, 0)


@dataclass(frozen=True, slots=True)
class Story:
    """Everything the store knows about one event (`devsync audit show`)."""

    event_id: str
    copies: dict[str, str]  # stage -> event JSON
    decisions: list[dict]
    ledger: list[dict]
    parked: dict | None
    dead_letters: list[DeadLetter]
