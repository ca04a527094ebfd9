"""Code and unit maps: vendor code -> MDC -> LOINC; unit aliases and conversions."""

from __future__ import annotations

from pydantic import Field, field_validator

from hub.events import DataClass
from hub.rules.base import RuleModel


class VendorCode(RuleModel):
    system: str = Field(description="Code system as sent (e.g. MDC, a vendor name).")
    code: str = Field(description="Code as sent.")


class MetricCode(RuleModel):
    metric: str = Field(description="Canonical metric name (e.g. heart-rate).")
    display: str = Field(description="Human readable name.")
    mdc_code: int = Field(description="IEEE 11073-10101 numeric code (e.g. 147842).")
    mdc_ref: str = Field(description="IEEE 11073 reference id (e.g. MDC_ECG_CARD_BEAT_RATE).")
    loinc: str | None = Field(None, description="LOINC code (e.g. 8867-4).")
    loinc_display: str | None = Field(None, description="LOINC display name.")
    unit: str = Field(description="Canonical UCUM unit (e.g. /min, %, mm[Hg], Cel).")
    mdc_unit_code: int | None = Field(None, description="MDC dimension code for the canonical unit.")
    mdc_unit_ref: str | None = Field(None, description="MDC dimension reference id.")
    data_class: DataClass = Field(DataClass.VITAL, description="Default data class of this metric.")
    vital_sign: bool = Field(True, description="Gets the FHIR vital-signs category.")
    aliases: list[VendorCode] = Field(default_factory=list, description="Other codes that mean this metric.")
    valid_range: tuple[float, float] | None = Field(None, description="Physiologic range; outside -> questionable.")

    @field_validator("valid_range")
    @classmethod
    def check_range_order(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and value[0] > value[1]:
            raise ValueError(f"low {value[0]:g} is above high {value[1]:g} (write [low, high])")
        return value


class UnitAlias(RuleModel):
    sent: str = Field(description="Unit as devices send it (e.g. mmHg, MDC_DIM_MMHG, bpm).")
    ucum: str = Field(description="The UCUM unit it means (e.g. mm[Hg]).")


class UnitConversion(RuleModel):
    from_unit: str = Field(alias="from", description="UCUM unit converted from.")
    to_unit: str = Field(alias="to", description="UCUM unit converted to.")
    scale: float = Field(description="to = from * scale + offset.")
    offset: float = Field(0.0, description="Additive offset after scaling.")


class UnitRules(RuleModel):
    aliases: list[UnitAlias] = Field(default_factory=list, description="Sent unit -> UCUM.")
    conversions: list[UnitConversion] = Field(default_factory=list, description="Linear conversions between UCUM units.")
