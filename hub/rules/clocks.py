"""Device clock handling: offset estimation and jump detection."""

from __future__ import annotations

from pydantic import Field

from hub.rules.base import RuleModel


class ClockRules(RuleModel):
    window_samples: int = Field(32, ge=1, description="Samples of (received - device time) kept per device; the minimum is the offset.")
    jump_threshold_s: float = Field(60.0, gt=0, description="An offset change larger than this is a clock jump (s).")
    jump_confirm_samples: int = Field(3, ge=1, description="Consecutive samples that confirm a backward jump.")
    suspect_hold_s: float = Field(120.0, ge=0, le=3600,
                                  description="Longest a reading suspected of a backward clock jump waits for the "
                                              "readings that confirm or refute it (s); then it goes on with the old offset.")
    apply_correction: bool = Field(True, description="Use the estimated offset for corrected_time.")
    min_correction_s: float = Field(0.5, ge=0, description="Offsets smaller than this are treated as zero (network delay).")
