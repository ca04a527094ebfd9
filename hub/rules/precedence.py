"""Precedence policies: which value wins when several devices report one metric."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from hub.rules.base import RuleModel


class Policy(StrEnum):
    MOST_RECENT_VALID = "most-recent-valid"
    SOURCE_RANK = "source-rank"
    HIGHEST_FIDELITY = "highest-fidelity"
    AVERAGE = "average"
    MOST_SEVERE = "most-severe"
    MANUAL_REVIEW = "manual-review"


class PrecedenceRule(RuleModel):
    metric: str = Field(description="Canonical metric name, or 'alarm' for alarms.")
    policy: Policy = Field(description="How the winner is chosen.")
    rank: list[str] = Field(default_factory=list, description="Sources best first (source-rank).")
    fallback: Policy | None = Field(None, description="Policy among sources not in rank / ties.")
    window_s: float | None = Field(None, ge=0, description="Override of the profile's resolve window (s).")
    disagreement_threshold: float | None = Field(
        None, ge=0, description="Flag for review when candidates differ by more than this (metric units)."
    )
