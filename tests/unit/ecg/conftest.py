"""Fixtures for the ECG unit tests: the real sample data folder and small record factories."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from connectors.ecg.model import Annotation, Device, EcgRecord, Lead, Patient

DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture
def record_factory():
    """record_factory(n_leads=2, n=1000, fs=500, **changes) -> a deterministic EcgRecord."""

    def make(n_leads: int = 2, n: int = 1000, fs: float = 500.0, **changes) -> EcgRecord:
        rng = np.random.default_rng(7)
        names = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6", "X", "Y", "Z"][:n_leads]
        leads = tuple(Lead(name, rng.integers(-2000, 2000, n).astype(np.int32), 2.5, 0.0, "uV") for name in names)
        base = dict(  # noqa: C408
            leads=leads,
            sample_rate=fs,
            start_time=datetime(2024, 3, 1, 8, 30, 15, 250000),
            patient=Patient(id="P-1", name="Test Person", sex="F", age_years=61.0),
            device=Device(manufacturer="Acme", model="ECG-1", serial="SN9", software="2.1"),
            annotations=(Annotation(100, "N"), Annotation(400, "V", "PVC", lead="II")),
        )
        base.update(changes)
        return EcgRecord(**base)

    return make
