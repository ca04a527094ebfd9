from __future__ import annotations

import numpy as np
import pytest

from connectors.ecg.model import EcgRecord, Lead, canonical_lead_name, fit_int16


@pytest.mark.parametrize(
    "raw,expected",
    [("ii", "II"), ("Lead II (Einthoven)", "II"), ("MDC_ECG_LEAD_AVR", "aVR"), ("avl", "aVL"), ("V6", "V6"),
     ("vx", "X"), ("MLII", "MLII"), ("ECG II", "II"), ("PLETH", "PLETH"), ("ECG V", "ECG V")],
)
def test_canonical_lead_name(raw, expected):
    assert canonical_lead_name(raw) == expected


def test_physical_and_microvolts_follow_scale_baseline_and_unit():
    lead = Lead("II", np.array([1024, 1224], dtype=np.int32), 0.005, 1024.0, "mV")
    np.testing.assert_allclose(lead.physical(), [0.0, 1.0])
    np.testing.assert_allclose(lead.microvolts(), [0.0, 1000.0])
    assert lead.scale_uv == pytest.approx(5.0)


def test_record_rejects_leads_of_different_lengths():
    with pytest.raises(ValueError, match="one length"):
        EcgRecord(leads=(Lead("I", np.zeros(3, np.int32), 1.0), Lead("II", np.zeros(4, np.int32), 1.0)), sample_rate=500)


def test_lead_lookup_names_the_leads_it_has(record_factory):
    record = record_factory()
    assert record.lead("lead ii").name == "II"
    with pytest.raises(KeyError, match="leads: I, II"):
        record.lead("V9")


def test_slice_shifts_annotations(record_factory):
    part = record_factory().slice(300, 800)
    assert part.n_samples == 500
    assert [(a.sample, a.code) for a in part.annotations] == [(100, "V")]


def test_fit_int16_keeps_fitting_counts_and_requantises_wide_ones():
    narrow = Lead("I", np.array([-5, 7], dtype=np.int32), 2.5, 0.0, "uV")
    assert np.array_equal(fit_int16(narrow).digital, narrow.digital) and fit_int16(narrow).scale == 2.5
    wide = Lead("I", np.array([-200000, 0, 150000], dtype=np.int64), 0.01, 0.0, "uV")
    fitted = fit_int16(wide)
    assert np.abs(fitted.digital).max() <= 32000
    assert np.abs(fitted.physical() - wide.physical()).max() <= fitted.scale / 2
    assert fitted.scale == pytest.approx(0.0625)  # 2000 uV / 32000, rounded up to 3 digits
    half = Lead("I", np.array([1, 2], dtype=np.int32), 1.0, 0.5, "uV")
    assert fit_int16(half).baseline == 0.5
    assert fit_int16(half, integer_baseline=True).baseline == 0.0
