"""Fixtures for the HL7 decoder unit tests: a small inventory and a decode helper."""

from __future__ import annotations

import pytest

from connectors.hl7.common import DecodeContext
from connectors.hl7.decode import decode_frame
from connectors.hl7.inventory import DeviceDirectory
from hub.rules.models import RuleSet

RECEIVED = 1_800_000_000.0


def small_rules() -> RuleSet:
    return RuleSet.model_validate({
        "device_types": [
            {"name": "multi-parameter-monitor", "protocol": "hl7v2-mllp", "sync_mode": "push",
             "criticality": "life-critical", "data_classes": ["vital", "alarm"], "source": "monitor"},
            {"name": "infusion-pump", "protocol": "hl7v2-mllp", "sync_mode": "push", "criticality": "high",
             "data_classes": ["setting", "alarm", "status"], "source": "infusion-pump"},
        ],
        "devices": [
            {"id": "MON-01", "type": "multi-parameter-monitor", "location": "ICU1-BED01",
             "eui64": "0600dc7500010001", "connector": {"equipment_ids": ["0600dc750001"]}},
            {"id": "GW-ACME", "type": "multi-parameter-monitor", "location": "ICU1-BED02",
             "eui64": "08:00:19:FF:FE:3E:D0:2D"},
            {"id": "PUMP-07", "type": "infusion-pump", "location": "ICU1-BED03", "eui64": "0012210000000000"},
        ],
    })


@pytest.fixture
def directory() -> DeviceDirectory:
    return DeviceDirectory(small_rules())


@pytest.fixture
def decode(directory):
    def run(text: str | bytes, **ctx):
        data = text.encode() if isinstance(text, str) else text
        return decode_frame(data.replace(b"\n", b"\r"), DecodeContext(directory, RECEIVED, **ctx))

    return run
