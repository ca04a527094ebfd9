from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from wfdb.processing.peaks import find_local_peaks

from hub.ecg.analysis import detect_qrs
from hub.holter.analysis import analyse_stream
from hub.holter.detect import fast_local_peaks, find_local_peaks_fast, merge_close_peaks
from hub.holter.settings import HolterSettings
from hub.holter.stream import open_wfdb

WFDB = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "wfdb"


@pytest.fixture(scope="module")
def mlii():
    return open_wfdb(WFDB / "100.hea").read(0, 360 * 60)[:, 0].astype(np.float64)


@pytest.mark.parametrize("radius", [1, 5, 18, 36, 72])
def test_fast_local_peaks_equal_wfdb(mlii, radius):
    assert np.array_equal(find_local_peaks(mlii, radius), find_local_peaks_fast(mlii, radius))


def test_fast_local_peaks_on_plateaus_and_edges():
    sig = np.array([3, 3, 1, 2, 2, 2, 0, 5, 5, 1, 4], dtype=float)
    for radius in (1, 2, 3):
        assert list(find_local_peaks(sig, radius)) == list(find_local_peaks_fast(sig, radius))


def test_xqrs_with_fast_peaks_gives_the_same_beats(mlii):
    plain = detect_qrs(mlii, 360.0)
    with fast_local_peaks():
        fast = detect_qrs(mlii, 360.0)
    assert len(plain) > 60 and np.array_equal(plain, fast)


def test_chunk_size_does_not_change_the_beats(tmp_path):
    rec = open_wfdb(WFDB / "100.hea")
    rec.n_samples = 360 * 300
    a, _ = analyse_stream(rec, HolterSettings(chunk_s=20), tmp_path / "a")
    b, _ = analyse_stream(rec, HolterSettings(chunk_s=120), tmp_path / "b")
    assert len(a) > 300 and np.array_equal(a, b)


def test_resume_continues_from_checkpoint(tmp_path):
    rec = open_wfdb(WFDB / "100.hea")
    rec.n_samples = 360 * 200
    s = HolterSettings(chunk_s=20)
    full, _ = analyse_stream(rec, s, tmp_path / "full")

    class Stop(Exception):
        pass

    def stop_after_4(done, total):
        if done == 4:
            raise Stop

    with pytest.raises(Stop):
        analyse_stream(rec, s, tmp_path / "cut", on_chunk=stop_after_4)
    with open(tmp_path / "cut" / "beats.i64", "ab") as f:
        f.write(b"\x01" * 12)  # a crash after writing data but before the checkpoint
    resumed_at = []
    again, _ = analyse_stream(rec, s, tmp_path / "cut", on_resume=lambda done, total: resumed_at.append(done))
    assert resumed_at == [4]
    assert np.array_equal(full, again)


def test_merge_close_peaks():
    assert list(merge_close_peaks(np.array([10, 50, 60, 200]), 72)) == [10, 200]
