"""Routing: which data classes (and which patients, locations, metrics) go to which sinks,
in which unit and code representation."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from hub.events import DataClass
from hub.rules.base import RuleModel


class Route(RuleModel):
    sink: str = Field(description="Sink name (e.g. hl7v2, fhir, pcd04, dicom, files).")
    data_classes: list[DataClass] = Field(description="Data classes sent to this sink.")
    locations: list[str] = Field(default_factory=list, description="Only these locations (prefix match); empty = all.")
    units: dict[str, str] = Field(default_factory=dict, description="metric -> UCUM unit this sink wants.")
    patients: list[str] = Field(default_factory=list, description="Only these patient ids; empty = all.")
    metrics: list[str] = Field(default_factory=list, description="Only these metrics; empty = all.")
    codes: Literal["mdc+loinc", "mdc", "loinc"] = Field(
        "mdc+loinc", description="Code representation this sink gets: IEEE 11073 MDC, LOINC, or both."
    )
