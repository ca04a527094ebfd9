"""Routing: which data classes go to which sinks."""

from __future__ import annotations

from pydantic import Field

from hub.events import DataClass
from hub.rules.base import RuleModel


class Route(RuleModel):
    sink: str = Field(description="Sink name (e.g. hl7v2, fhir, dicom, files).")
    data_classes: list[DataClass] = Field(description="Data classes sent to this sink.")
    locations: list[str] = Field(default_factory=list, description="Only these locations (prefix match); empty = all.")
    units: dict[str, str] = Field(default_factory=dict, description="metric -> UCUM unit this sink wants.")
