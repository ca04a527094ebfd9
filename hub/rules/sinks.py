"""Sink definitions (EHR endpoints). Owned by the sinks work."""

from __future__ import annotations

from pydantic import Field

from hub.rules.base import RuleModel


class FileSinkConfig(RuleModel):
    directory: str = Field("out", description="Output folder (demo layout: hl7v2/, fhir/).")


class SinkRules(RuleModel):
    files: FileSinkConfig | None = Field(None, description="Write outputs to files (demo / debugging).")
