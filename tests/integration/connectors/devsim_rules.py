"""Rule sets for the device-connector integration tests (polling, hybrid, SDC, MQTT)."""

from __future__ import annotations

import asyncio

from hub.rules.models import RuleSet

PUMP_FIELDS = {
    "RATE": {"code": "MDC_FLOW_FLUID_PUMP", "system": "MDC", "mdc_code": 157784, "unit": "ml/h"},
    "VTBI": {"code": "VTBI", "system": "PUMP", "unit": "ml"},
    "VI": {"code": "VI", "system": "PUMP", "unit": "ml"},
    "STATE": {"kind": "status"},
    "ALARM": {"kind": "alarm"},
}


def device_type(name: str, protocol: str, sync_mode: str, data_classes: list[str], **connector) -> dict:
    return {"name": name, "protocol": protocol, "sync_mode": sync_mode, "criticality": "high",
            "data_classes": data_classes, "source": name, "connector": connector}


def build_rules(device_types: list[dict], devices: list[dict], profiles: dict | None = None, **extra) -> RuleSet:
    profiles = profiles or {"setting": {"latency_budget_s": 30}, "vital": {"latency_budget_s": 10}}
    return RuleSet.model_validate({"device_types": device_types, "devices": devices, "sync_profiles": profiles,
                                   **extra})


class Collector:
    """An emit() that records events; `wait_for` polls a condition with a bounded deadline."""

    def __init__(self):
        self.events = []

    async def emit(self, event) -> None:
        self.events.append(event)

    async def wait_for(self, condition, timeout_s: float = 15.0, step_s: float = 0.02) -> bool:
        for _ in range(int(timeout_s / step_s)):
            if condition(self.events):
                return True
            await asyncio.sleep(step_s)
        return condition(self.events)
