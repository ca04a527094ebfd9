"""Property: read(write(record)) == record, for generated records, in every writable format
(as far as each format carries; see docs/ecg-formats.md)."""

from __future__ import annotations

import tempfile
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.ecg import read_ecg, write_ecg
from connectors.ecg.model import Annotation, EcgRecord, Lead, Patient

NAMES = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]


@st.composite
def records(draw) -> EcgRecord:
    n_leads = draw(st.integers(1, 12))
    n = draw(st.integers(300, 700))
    fs = draw(st.sampled_from([250.0, 360.0, 500.0, 1000.0]))
    scale = draw(st.sampled_from([1.0, 2.5, 4.88, 5.0]))
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    leads = tuple(Lead(NAMES[i], rng.integers(-30000, 30000, n).astype(np.int32), scale, 0.0, "uV") for i in range(n_leads))
    samples = sorted(draw(st.lists(st.integers(1, n - 1), max_size=5, unique=True)))
    codes = draw(st.lists(st.sampled_from(["N", "V", "A"]), min_size=len(samples), max_size=len(samples)))
    start = datetime(2020, 1, 1) + timedelta(seconds=draw(st.integers(0, 10**8)), milliseconds=draw(st.integers(0, 999)))
    patient = Patient(id=draw(st.text("ABCYZ0123-", min_size=1, max_size=12)), sex=draw(st.sampled_from(["M", "F"])))  # no "X": EDF+ unknown
    return EcgRecord(leads=leads, sample_rate=fs, start_time=start, patient=patient,
                     annotations=tuple(Annotation(s, c) for s, c in zip(samples, codes)))


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records())
def test_every_writable_format_gives_the_record_back(record):
    with tempfile.TemporaryDirectory() as tmp:
        for fmt, name, options in [("wfdb", "r.hea", {}), ("edf", "r.edf", {}), ("csv", "r.csv", {}), ("aecg", "r.xml", {}),
                                   ("ecgaware", "r.ecgaware.xml", {"encoding": "BinaryData"}), ("dicom", "r.dcm", {})]:
            back = read_ecg(write_ecg(record, Path(tmp) / name, fmt, **options))
            assert back.lead_names == record.lead_names, fmt
            assert back.sample_rate == record.sample_rate and back.n_samples == record.n_samples, fmt
            for a, b in zip(record.leads, back.leads):
                np.testing.assert_allclose(b.microvolts(), a.microvolts(), atol=1e-6 * 30000 * a.scale_uv, err_msg=fmt)
            if fmt != "csv":
                assert back.patient.id == record.patient.id and back.patient.sex == record.patient.sex, fmt
                assert [(x.sample, x.code) for x in back.annotations] == [(x.sample, x.code) for x in record.annotations], fmt
            tolerance = timedelta(seconds=1) if fmt == "edf" else timedelta(milliseconds=1)
            assert abs(back.start_time - record.start_time) < tolerance, fmt
