"""QRS detection scored against real reference annotations (MIT-BIH 100; the HL7 example aECG)."""

from __future__ import annotations

import numpy as np
import pytest

from connectors.ecg import read_ecg
from hub.ecg.analysis import (
    detect_qrs,
    detect_record_qrs,
    heart_rate_series,
    pick_lead,
    reference_beats,
    rr_intervals,
    score_qrs,
)

# Measured here: XQRS on MIT-BIH 100 (MLII, full 30 min) -> 2273/2273 beats, 0 FP (Se 1.000, +P 1.000).
SE_FLOOR = 0.999
PPV_FLOOR = 0.999


def test_xqrs_on_mitbih_100_meets_the_measured_floor(data_dir):
    record = read_ecg(data_dir / "wfdb/100.hea")
    reference = reference_beats(record)
    assert len(reference) == 2273  # 2274 annotations minus the rhythm label '+'
    score = score_qrs(reference, detect_record_qrs(record), record.sample_rate)
    assert pick_lead(record).name == "MLII"
    assert score.sensitivity >= SE_FLOOR and score.positive_predictivity >= PPV_FLOOR, score


def test_detections_fall_inside_the_annotated_qrs_complexes_of_the_hl7_example(data_dir):
    record = read_ecg(data_dir / "aecg/hl7_example_aECG.xml")
    complexes = [(a.sample, a.end_sample) for a in record.annotations if a.code == "MDC_ECG_WAVC_QRSWAVE" and a.end_sample]
    assert len(complexes) >= 10
    peaks = detect_record_qrs(record, "II")
    hits = [sum(lo - 10 <= p <= hi + 10 for p in peaks) for lo, hi in complexes]
    assert hits == [1] * len(complexes)  # every annotated QRS found once (+-20 ms)
    inside = sum(any(lo - 10 <= p <= hi + 10 for lo, hi in complexes) for p in peaks)
    assert inside >= len(peaks) - 1  # at most one beat outside the annotated span (edge of the strip)


def test_scoring_uses_a_150_ms_window():
    fs = 1000.0
    reference = np.array([1000, 2000, 3000])
    assert score_qrs(reference, reference + 149, fs).true_positives == 3
    late = score_qrs(reference, reference + 151, fs)
    assert (late.true_positives, late.false_negatives, late.false_positives) == (0, 3, 3)
    extra = score_qrs(reference, np.array([1000, 1500, 2000, 3000]), fs)
    assert extra.sensitivity == 1.0 and extra.positive_predictivity == pytest.approx(0.75)


def test_rr_and_heart_rate_series():
    peaks = np.array([0, 360, 720, 1260, 1270, 1620])
    np.testing.assert_allclose(rr_intervals(peaks, 360), [1.0, 1.0, 1.5, 10 / 360, 350 / 360])
    times, bpm = heart_rate_series(peaks, 360)
    np.testing.assert_allclose(bpm, [60, 60, 40, 60 * 360 / 350])  # the 28 ms double detection is dropped
    np.testing.assert_allclose(times, [1.0, 2.0, 3.5, 4.5])


def test_short_or_broken_signals_give_no_peaks():
    assert detect_qrs(np.zeros(100), 500).size == 0
    assert detect_qrs(np.full(5000, np.nan), 500).size == 0
    with pytest.raises(ValueError, match="1-D"):
        detect_qrs(np.zeros((2, 5000)), 500)


def test_benchmark_scores_every_annotated_record_in_its_folder(data_dir, tmp_path):
    import argparse

    from connectors.ecg import write_ecg
    from hub.bench.ecg import run

    two_minutes = read_ecg(data_dir / "wfdb/100.hea").slice(0, 360 * 120)
    write_ecg(two_minutes, tmp_path / "m100.hea")
    write_ecg(read_ecg(data_dir / "wfdb/v102s.hea").slice(0, 250 * 20), tmp_path / "noann.hea")  # no .atr: not scored
    figures = {f.name: f for f in run(argparse.Namespace(data_dir=tmp_path, annotator="atr", skip_stream=True))}
    assert figures["qrs_records"].value == 1
    assert figures["qrs_reference_beats"].value == len(reference_beats(two_minutes))
    assert figures["qrs_sensitivity"].value >= SE_FLOOR and figures["qrs_ppv_m100"].value >= PPV_FLOOR
    assert figures["qrs_sensitivity"].unit == "ratio"


def test_fiducials_move_to_the_peak_of_the_qrs_band():
    from hub.ecg.analysis import refine_fiducials

    fs = 360.0
    t = np.arange(int(10 * fs)) / fs
    centres = np.arange(1.0, 9.5, 0.8)
    sig = sum(np.exp(-((t - c) / 0.012) ** 2) for c in centres)
    truth = np.rint(centres * fs).astype(np.int64)
    off_by_a_few = truth + np.tile([-4, 3, 0, 5, -2], len(truth))[: len(truth)]
    assert np.abs(refine_fiducials(sig, off_by_a_few, fs) - truth).max() <= 1
    assert refine_fiducials(sig, np.array([], dtype=np.int64), fs).size == 0
