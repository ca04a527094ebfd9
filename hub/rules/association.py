"""Device -> location binding and the encounter source."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from hub.rules.base import RuleModel


class EncounterSourceKind(StrEnum):
    HL7_ADT = "hl7-adt"
    STATIC = "static"


class StaticBinding(RuleModel):
    location: str = Field(description="Location (bed).")
    patient_id: str = Field(description="Patient identifier (MRN).")
    encounter_id: str | None = Field(None, description="Encounter / visit number.")
    patient_name: str | None = Field(None, description="Name (rendered to the EHR, never logged).")


class AssociationRules(RuleModel):
    encounter_source: EncounterSourceKind = Field(
        EncounterSourceKind.HL7_ADT, description="Where bed -> patient bindings come from."
    )
    static_bindings: list[StaticBinding] = Field(default_factory=list, description="Fixed bindings (demo/tests).")
    park_limit_s: float = Field(3600.0, gt=0, description="How long an unassociated event waits before DLQ (s).")
    park_max_events: int = Field(100_000, ge=1, description="Max parked events held in total.")
