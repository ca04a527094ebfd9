from __future__ import annotations

import numpy as np
import pytest

from hub.holter import hrv, rhythm
from hub.holter.analysis import compute_figures
from hub.holter.settings import HolterSettings

FS = 250.0
S = HolterSettings()


def beats_from_rr(rr_s: np.ndarray) -> np.ndarray:
    return np.rint(np.concatenate([[1.0], 1.0 + np.cumsum(rr_s)]) * FS).astype(np.int64)


def all_good(beats):
    return np.ones(int(beats[-1] / FS / S.quality_window_s) + 2, dtype=bool)


def test_constant_rhythm():
    b = beats_from_rr(np.full(600, 0.8))
    f = compute_figures(b, FS, all_good(b), b[-1] / FS + 1, S)
    assert f["heart_rate"]["mean_bpm"] == pytest.approx(75.0)
    assert f["hrv_time"]["sdnn_ms"] == pytest.approx(0.0, abs=1e-6)
    assert f["hrv_time"]["rmssd_ms"] == pytest.approx(0.0, abs=1e-6)
    assert f["pauses"]["count"] == 0 and f["atrial_fibrillation"]["episodes"] == 0
    assert f["heart_rate"]["distribution_percent"]["normal"] == pytest.approx(100.0)


def test_pause_threshold_from_settings():
    rr = np.full(300, 0.8)
    rr[100] = 2.5
    b = beats_from_rr(rr)
    assert compute_figures(b, FS, all_good(b), b[-1] / FS, S)["pauses"]["count"] == 1
    assert compute_figures(b, FS, all_good(b), b[-1] / FS, HolterSettings(pause_threshold_s=3.0))["pauses"]["count"] == 0


def test_pause_over_unanalysable_signal_is_not_a_pause():
    rr = np.full(300, 0.8)
    rr[100] = 4.0
    b = beats_from_rr(rr)
    good = all_good(b)
    good[int(b[100] / FS / S.quality_window_s)] = False
    assert compute_figures(b, FS, good, b[-1] / FS, S)["pauses"]["count"] == 0


def test_af_detected_in_irregular_segment_only():
    rng = np.random.default_rng(7)
    sinus = 0.8 + 0.02 * np.sin(np.arange(600) / 5.0)
    af = rng.uniform(0.35, 1.1, 600)
    b = beats_from_rr(np.concatenate([sinus, af, sinus]))
    f = compute_figures(b, FS, all_good(b), b[-1] / FS, S)["atrial_fibrillation"]
    assert f["episodes"] == 1
    episode = f["list"][0]
    af_start, af_end = b[600] / FS, b[1200] / FS
    assert af_start - 60 <= episode["start_s"] <= af_start + 60
    assert af_end - 60 <= episode["end_s"] <= af_end + 60
    assert 0 < f["burden_percent"] < 100


def test_lomb_scargle_puts_respiratory_modulation_in_hf():
    t = np.cumsum(np.full(2000, 0.8))
    nn = 0.8 + 0.03 * np.sin(2 * np.pi * 0.25 * t)  # 30 ms amplitude at 0.25 Hz: variance 450 ms^2
    f = hrv.hrv_frequency_domain(t, nn, S)
    assert f["hf_ms2"] == pytest.approx(450.0, rel=0.1)
    assert f["lf_ms2"] < 0.05 * f["hf_ms2"] and f["vlf_ms2"] < 0.05 * f["hf_ms2"]


def test_sdann_and_sdnn_index_on_segments():
    rr = np.concatenate([np.full(400, 0.75), np.full(400, 0.85)])
    b = beats_from_rr(rr)
    t, nn, succ = hrv.nn_intervals(b, FS, all_good(b), S)
    td = hrv.hrv_time_domain(t, nn, succ, S)
    assert td["segments"] >= 2 and td["sdann_ms"] > 30 and td["sdnn_index_ms"] < td["sdnn_ms"]


def test_window_flags():
    sig = np.concatenate([np.sin(np.arange(2500) / 10.0), np.zeros(2500), np.full(2500, 50.0) * np.sin(np.arange(2500))])
    assert list(rhythm.window_flags(sig, FS, 10.0, S.flat_ptp_mv, S.max_ptp_mv)) == [True, False, False]


def test_pnn50_does_not_count_a_difference_of_exactly_50_ms():
    """At 360 Hz an 18-sample difference is exactly 50 ms; in floating point (a/fs - b/fs) * 1000
    lands above 50.0 for some pairs (9 of 33 such pairs in MIT-BIH record 100 did)."""
    fs = 360.0
    rr_samples = np.array([288, 306, 288, 306, 307, 288] * 20)
    nn_ms = rr_samples / fs * 1000.0
    assert np.any(np.abs(np.diff(nn_ms)) > 50.0)  # the naive comparison miscounts
    diffs = np.diff(nn_ms)
    expected = 100.0 * np.mean(np.abs(np.diff(rr_samples)) > 18)
    assert hrv.pnn50_percent(diffs) == pytest.approx(expected)
    assert hrv.pnn50_percent(np.array([])) is None
