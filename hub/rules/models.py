"""The root rule-set model: one schema over every rule file.

A rule folder holds any number of YAML files; each file may hold any subset of the
top-level sections below. Lists are concatenated across files, maps are merged (a key
defined twice is an error), single sections may appear in one file only.
"""

from __future__ import annotations

from pydantic import Field

from hub.events import DataClass
from hub.rules.association import AssociationRules
from hub.rules.base import RuleModel
from hub.rules.clocks import ClockRules
from hub.rules.codes import MetricCode, UnitRules
from hub.rules.connectors import ConnectorRules
from hub.rules.devices import DeviceEntry, DeviceType
from hub.rules.ecg import EcgRules
from hub.rules.edge import EdgeRules
from hub.rules.kafka import KafkaRules
from hub.rules.precedence import PrecedenceRule
from hub.rules.profiles import SyncProfile
from hub.rules.routing import Route
from hub.rules.runtime import RuntimeRules
from hub.rules.sinks import SinkRules

LIST_SECTIONS = ("device_types", "devices", "codes", "precedence", "routing")
MAP_SECTIONS = ("sync_profiles",)
SINGLE_SECTIONS = ("units", "association", "clocks", "connectors", "sinks", "edge", "runtime", "kafka", "ecg")


class RuleFile(RuleModel):
    """What one YAML file may contain (every section optional)."""

    version: int = Field(1, ge=1, le=1, description="Rule schema version (1).")
    device_types: list[DeviceType] | None = Field(None, description="Classification matrix of device types.")
    devices: list[DeviceEntry] | None = Field(None, description="Device inventory.")
    sync_profiles: dict[DataClass, SyncProfile] | None = Field(None, description="Sync profile per data class.")
    codes: list[MetricCode] | None = Field(None, description="Metric code map (vendor -> MDC -> LOINC).")
    units: UnitRules | None = Field(None, description="Unit aliases and conversions.")
    precedence: list[PrecedenceRule] | None = Field(None, description="Precedence policy per metric.")
    association: AssociationRules | None = Field(None, description="Device -> patient association.")
    routing: list[Route] | None = Field(None, description="Which data classes go to which sinks.")
    clocks: ClockRules | None = Field(None, description="Device clock offset estimation.")
    connectors: ConnectorRules | None = Field(None, description="Shared connector listeners.")
    sinks: SinkRules | None = Field(None, description="Sink endpoints.")
    edge: EdgeRules | None = Field(None, description="Edge gateway settings.")
    runtime: RuntimeRules | None = Field(None, description="Runtime settings.")
    kafka: KafkaRules | None = Field(None, description="Kafka runtime: topics and processors.")
    ecg: EcgRules | None = Field(None, description="ECG streaming, watch folder and PACS.")


class RuleSet(RuleModel):
    """All rule files merged; what the hub runs on."""

    device_types: list[DeviceType] = Field(default_factory=list)
    devices: list[DeviceEntry] = Field(default_factory=list)
    sync_profiles: dict[DataClass, SyncProfile] = Field(default_factory=dict)
    codes: list[MetricCode] = Field(default_factory=list)
    units: UnitRules = Field(default_factory=UnitRules)
    precedence: list[PrecedenceRule] = Field(default_factory=list)
    association: AssociationRules = Field(default_factory=AssociationRules)
    routing: list[Route] = Field(default_factory=list)
    clocks: ClockRules = Field(default_factory=ClockRules)
    connectors: ConnectorRules = Field(default_factory=ConnectorRules)
    sinks: SinkRules = Field(default_factory=SinkRules)
    edge: EdgeRules = Field(default_factory=EdgeRules)
    runtime: RuntimeRules = Field(default_factory=RuntimeRules)
    kafka: KafkaRules = Field(default_factory=KafkaRules)
    ecg: EcgRules = Field(default_factory=EcgRules)

    # --- lookups used by the stages (built once, cheap) ---
    def device_type(self, name: str) -> DeviceType | None:
        return next((t for t in self.device_types if t.name == name), None)

    def device(self, device_id: str) -> DeviceEntry | None:
        return next((d for d in self.devices if d.id == device_id), None)

    def profile(self, data_class: DataClass) -> SyncProfile:
        return self.sync_profiles.get(data_class) or DEFAULT_PROFILE

    def precedence_for(self, metric: str) -> PrecedenceRule | None:
        return next((p for p in self.precedence if p.metric == metric), None)

    def sources(self) -> set[str]:
        return {t.source for t in self.device_types}


DEFAULT_PROFILE = SyncProfile(latency_budget_s=10.0)
