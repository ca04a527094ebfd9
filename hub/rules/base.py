"""Shared base for every rule-file model: frozen, unknown keys forbidden."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class RuleModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False)
