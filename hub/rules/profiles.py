"""Sync profiles per data class: latency budget, reorder window, staleness, polling."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from hub.rules.base import RuleModel


class StalenessAction(StrEnum):
    FLAG_STALE = "flag-stale"  # re-use the last known value, flagged stale
    FLAG_MISSING = "flag-missing"  # emit a missing marker


class SyncProfile(RuleModel):
    latency_budget_s: float = Field(gt=0, description="End-to-end budget device time -> delivered (s).")
    reorder_window_s: float = Field(0.0, ge=0, description="How long to hold events to restore order (s). 0 = none.")
    reorder_max_events: int = Field(1000, ge=1, description="Max events held per stream while reordering.")
    dedupe_window_events: int = Field(4096, ge=1, description="Event ids remembered per stream for dedupe.")
    staleness_limit_s: float | None = Field(None, gt=0, description="After this long without a value it is stale.")
    staleness_action: StalenessAction = Field(StalenessAction.FLAG_STALE, description="What to do when stale.")
    poll_interval_s: float | None = Field(None, gt=0, description="Poll interval for polled devices (s).")
    poll_jitter_s: float = Field(0.0, ge=0, description="Random jitter added to each poll (s).")
    rate_limit_per_s: float | None = Field(None, gt=0, description="Max device requests per second.")
    resolve_window_s: float = Field(
        5.0, ge=0, description="Conflict resolution bucket: candidates within one bucket compete (s). 0 = no resolution."
    )
    resolve_grace_s: float = Field(
        2.0, ge=0, description="How long after a bucket ends (hub time) late candidates are still awaited (s)."
    )
