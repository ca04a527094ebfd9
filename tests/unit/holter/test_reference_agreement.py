"""Beat-derived figures from detected beats (the job's chunked detection path) against the same
figures from the reference beat annotations of the MIT-BIH records in ../shared/data/wfdb.

Tolerance: 1 % relative for every figure, pNN50 included; the HR distribution and the AF burden
(percentages that are often near 0) are compared within 1 percentage point; counts that are
zero must both be zero.
Only records with reference beat annotations (.atr) can be compared: record 100 here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from connectors.ecg.wfdb_format import read_wfdb
from hub.ecg.analysis import reference_beats, score_qrs
from hub.holter.analysis import analyse_stream, compute_figures
from hub.holter.settings import HolterSettings
from hub.holter.stream import open_wfdb

WFDB = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "wfdb"
ANNOTATED = sorted(p.stem for p in WFDB.glob("*.atr"))

RELATIVE = [
    ("heart_rate", "total_beats"), ("heart_rate", "mean_bpm"), ("heart_rate", "max_bpm"), ("heart_rate", "min_bpm"),
    ("pauses", "longest_rr_s"),
    ("hrv_time", "sdnn_ms"), ("hrv_time", "sdann_ms"), ("hrv_time", "sdnn_index_ms"), ("hrv_time", "rmssd_ms"),
    ("hrv_time", "pnn50_percent"),
    ("hrv_frequency", "total_power_ms2"), ("hrv_frequency", "vlf_ms2"), ("hrv_frequency", "lf_ms2"), ("hrv_frequency", "hf_ms2"),
    ("hrv_frequency", "lf_hf_ratio"),
]
EXACT = [("heart_rate", "max_time_s"), ("heart_rate", "min_time_s"), ("pauses", "count"), ("atrial_fibrillation", "episodes")]
PERCENT_POINTS = [("atrial_fibrillation", "burden_percent")]


@pytest.fixture(scope="module", params=ANNOTATED)
def figure_pair(request, tmp_path_factory):
    name = request.param
    s = HolterSettings()
    rec = open_wfdb(WFDB / f"{name}.hea")
    beats, good = analyse_stream(rec, s, tmp_path_factory.mktemp(f"chunks{name}"))
    reference = reference_beats(read_wfdb(WFDB / f"{name}.hea"))
    assert len(reference) > 1000
    detected = compute_figures(beats, rec.sample_rate, good, rec.duration_s, s)
    expected = compute_figures(reference, rec.sample_rate, good, rec.duration_s, s)
    return name, detected, expected, beats, reference, rec.sample_rate


def test_there_is_an_annotated_record():
    assert "100" in ANNOTATED


@pytest.mark.parametrize("section,figure", RELATIVE, ids=[f"{a}.{b}" for a, b in RELATIVE])
def test_figure_within_one_percent(figure_pair, section, figure):
    _, detected, expected, *_ = figure_pair
    ref, got = expected[section][figure], detected[section][figure]
    assert ref is not None and got is not None
    assert got == pytest.approx(ref, rel=0.01), f"{section}.{figure}: detected {got} vs reference {ref}"


@pytest.mark.parametrize("section,figure", EXACT, ids=[f"{a}.{b}" for a, b in EXACT])
def test_figure_equal(figure_pair, section, figure):
    _, detected, expected, *_ = figure_pair
    assert detected[section][figure] == expected[section][figure]


@pytest.mark.parametrize("section,figure", PERCENT_POINTS, ids=[f"{a}.{b}" for a, b in PERCENT_POINTS])
def test_percentage_within_one_point(figure_pair, section, figure):
    _, detected, expected, *_ = figure_pair
    assert abs(detected[section][figure] - expected[section][figure]) <= 1.0


@pytest.mark.parametrize("band", ["below_brady", "normal", "above_tachy"])
def test_hr_distribution_within_one_point(figure_pair, band):
    _, detected, expected, *_ = figure_pair
    assert abs(detected["heart_rate"]["distribution_percent"][band] - expected["heart_rate"]["distribution_percent"][band]) <= 1.0


def test_detected_beats_match_reference_beat_by_beat(figure_pair):
    """The chunked detection scored like EC57 (150 ms window): what the figures above rest on."""
    _, _, _, beats, reference, fs = figure_pair
    score = score_qrs(reference, beats, fs)
    assert score.sensitivity >= 0.99 and score.positive_predictivity >= 0.99


def test_pause_shows_up_when_beats_are_removed(figure_pair):
    """The pause detector on the same real beats with three beats taken out: one pause, at the gap."""
    name = figure_pair[0]
    s = HolterSettings()
    rec = open_wfdb(WFDB / f"{name}.hea")
    beats = reference_beats(read_wfdb(WFDB / f"{name}.hea"))
    gapped = np.delete(beats, [1000, 1001, 1002])
    good = np.ones(int(np.ceil(rec.duration_s / s.quality_window_s)), dtype=bool)
    pauses = compute_figures(gapped, rec.sample_rate, good, rec.duration_s, s)["pauses"]
    assert pauses["count"] == 1
    assert pauses["longest_time_s"] == pytest.approx(beats[999] / rec.sample_rate)
    assert pauses["longest_s"] == pytest.approx((beats[1003] - beats[999]) / rec.sample_rate)
