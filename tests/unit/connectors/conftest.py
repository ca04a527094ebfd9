"""Fixtures for the connector unit tests: small rule sets and fake time."""

from __future__ import annotations

import pytest

from hub.rules.models import RuleSet

PROFILES = {
    "setting": {"latency_budget_s": 30, "poll_interval_s": 10, "poll_jitter_s": 1, "rate_limit_per_s": 0.1,
                "staleness_limit_s": 60, "staleness_action": "flag-missing"},
    "vital": {"latency_budget_s": 10, "staleness_limit_s": 30, "staleness_action": "flag-stale"},
    "alarm": {"latency_budget_s": 0.5},
    "status": {"latency_budget_s": 30},
}
PUMP_FIELDS = {
    "RATE": {"code": "MDC_FLOW_FLUID_PUMP", "system": "MDC", "mdc_code": 157784, "unit": "ml/h"},
    "VTBI": {"code": "VTBI", "system": "PUMP", "unit": "ml"},
    "VI": {"code": "VI", "system": "PUMP", "unit": "ml"},
    "STATE": {"kind": "status"},
    "ALARM": {"kind": "alarm", "alarm_priority": "high"},
}


def build_rules(device_types: list[dict], devices: list[dict], profiles: dict | None = None, **extra) -> RuleSet:
    return RuleSet.model_validate({
        "device_types": device_types, "devices": devices,
        "sync_profiles": PROFILES if profiles is None else profiles, **extra,
    })


def pump_type(**connector) -> dict:
    return {"name": "infusion-pump", "protocol": "poll-tcp", "sync_mode": "polling", "criticality": "high",
            "data_classes": ["setting", "alarm", "status"], "source": "infusion-pump",
            "connector": {"fields": PUMP_FIELDS, **connector}}


class FakeTime:
    """A clock and an async sleep that advances it: poll loops run instantly and deterministically."""

    def __init__(self, start: float = 1_763_700_000.0):
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def rules_factory():
    return build_rules


@pytest.fixture
def pump_type_factory():
    return pump_type
