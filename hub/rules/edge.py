"""Edge gateway settings (store-and-forward buffer). Owned by the edge work."""

from __future__ import annotations

from pydantic import Field

from hub.rules.base import RuleModel


class EdgeRules(RuleModel):
    gateway_id: str = Field("edge-1", description="This gateway's id (devices[].gateway).")
