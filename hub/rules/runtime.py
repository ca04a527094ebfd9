"""Runtime settings that integration engineers may tune."""

from __future__ import annotations

from pydantic import Field

from hub.rules.base import RuleModel


class RuntimeRules(RuleModel):
    metrics_port: int = Field(9464, ge=0, le=65535, description="Prometheus /metrics port (0 = off).")
    database_url: str = Field("sqlite:///devsync.db", description="SQLAlchemy URL for state, audit and ledger.")
    queue_size: int = Field(10_000, ge=1, description="Bound of each in-process queue (back-pressure).")
    log_patient_identifiers: bool = Field(False, description="Allow patient ids in logs (off: PHI stays out).")
