"""Audit records: every conflict decision, with all candidates, the policy and the winner."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from hub.events import Quality


class Candidate(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: str
    device_id: str
    source: str | None
    value: float | None
    text: str | None = None
    unit: str | None
    time: float = Field(description="Corrected time of the reading (epoch s).")
    quality: frozenset[Quality] = frozenset()


class AuditRecord(BaseModel):
    """One decision of the resolver. `decision_id` is deterministic (same inputs, same id)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    decision_id: str
    patient_id: str
    metric: str
    window_start: float
    window_end: float
    policy: str
    candidates: tuple[Candidate, ...]
    winner_event_id: str | None = Field(description="None when nothing valid won (all invalid / manual review).")
    winner_value: float | None = None
    reason: str = Field(description="Why the winner won, in words.")
    review: bool = Field(False, description="Flagged for manual review (disagreement or manual-review policy).")

    def to_json(self) -> bytes:
        return self.__pydantic_serializer__.to_json(self)
