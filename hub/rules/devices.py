"""Device inventory and classification matrix."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field

from hub.events import DataClass
from hub.rules.base import RuleModel


class SyncMode(StrEnum):
    POLLING = "polling"
    PUSH = "push"
    HYBRID = "hybrid"


class Criticality(StrEnum):
    LIFE_CRITICAL = "life-critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class Protocol(StrEnum):
    HL7V2_MLLP = "hl7v2-mllp"
    MQTT = "mqtt"
    HTTP = "http"
    POLL_TCP = "poll-tcp"
    POLL_HTTP = "poll-http"
    HYBRID_TCP = "hybrid-tcp"
    SDC = "sdc"
    ECG_STREAM = "ecg-stream"
    ECG_FILE = "ecg-file"
    SIMULATED = "simulated"


class DeviceType(RuleModel):
    name: str = Field(description="Device type name, referenced by devices[].type.")
    description: str | None = Field(None, description="Free text for humans.")
    protocol: Protocol = Field(description="How the hub talks to this kind of device.")
    sync_mode: SyncMode = Field(description="polling, push or hybrid (events plus a baseline poll).")
    criticality: Criticality = Field(description="Clinical criticality; drives alerting and shedding.")
    data_classes: list[DataClass] = Field(description="Data classes this device type produces.")
    source: str = Field(description="Source name used by precedence rules (e.g. arterial-line, nibp).")
    fidelity: int = Field(1, ge=0, description="Higher is better; used by the highest-fidelity policy.")
    connector: dict[str, Any] = Field(
        default_factory=dict, description="Connector settings for this type (see the connector's README)."
    )


class DeviceEntry(RuleModel):
    id: str = Field(description="Unique device id in the hub.")
    type: str = Field(description="A device_types[].name.")
    location: str | None = Field(None, description="Bed / location the device is bound to (e.g. ICU1-BED01).")
    serial: str | None = Field(None, description="Serial number.")
    eui64: str | None = Field(None, description="IEEE EUI-64 of the device (OBX-18 in PCD-01).")
    model: str | None = Field(None, description="Model name.")
    manufacturer: str | None = Field(None, description="Manufacturer.")
    gateway: str | None = Field(None, description="Edge gateway this device sits behind, if any.")
    connector: dict[str, Any] = Field(default_factory=dict, description="Per-device connector overrides.")
