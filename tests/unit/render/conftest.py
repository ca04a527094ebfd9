"""Fixtures for the renderer tests: the default rules, a context, and event factories built from them."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest

from hub.render.context import RenderContext
from hub.render.samples import sample_alarm, sample_event
from hub.rules.load import load_rules

RULES_DIR = Path(__file__).resolve().parents[3] / "rules"


@pytest.fixture(scope="session")
def rules():
    return load_rules(RULES_DIR)


@pytest.fixture(scope="session")
def ctx(rules):
    return RenderContext.from_rules(rules)


@pytest.fixture
def event_factory(rules):
    """event_factory(device_id=..., metric=..., value=..., unit=..., text=..., quality=..., t=..., patient=...)."""
    return partial(sample_event, rules)


@pytest.fixture
def alarm_factory(rules):
    return partial(sample_alarm, rules)
