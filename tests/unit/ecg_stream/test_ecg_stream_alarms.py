"""Alarm rules on R-wave results, and the partial-record excerpt (pure)."""

from __future__ import annotations

import numpy as np
import pytest

from connectors.ecg_stream.alarms import ASYSTOLE, BRADY, TACHY, AlarmEngine, ChunkHistory
from connectors.ecg_stream.jitter import Chunk
from connectors.ecg_stream.rwave import RwaveResult
from hub.rules.ecg import EcgAlarmRules

FS = 100.0


def engine(**rules) -> AlarmEngine:
    return AlarmEngine(EcgAlarmRules(**rules), FS)


def beats(start_s: float, stop_s: float, rr_s: float) -> list[int]:
    return [int(t * FS) for t in np.arange(start_s, stop_s, rr_s)]


def test_a_pause_still_going_on_starts_an_asystole_alarm_with_a_partial_record():
    e = engine(pause_s=3.0)
    assert e.observe(RwaveResult(beats(0, 5, 0.8), 500, 75.0), 0) == []
    [change] = e.observe(RwaveResult([], 900, None), 0)  # last beat at 4.8 s, analysed up to 9 s: 4.2 s pause
    assert (change.condition, change.active, change.partial_record) == (ASYSTOLE, True, True)
    assert change.at_index == 480 + 300  # when the pause reached the limit
    [end] = e.observe(RwaveResult([950, 1030], 1100, None), 0)
    assert (end.condition, end.active, end.partial_record) == (ASYSTOLE, False, False)


def test_a_pause_found_late_between_two_analysed_beats_still_raises_and_clears():
    e = engine(pause_s=3.0)
    e.observe(RwaveResult(beats(0, 5, 0.8), 500, 75.0), 0)
    changes = e.observe(RwaveResult([1000, 1080, 1160], 1200, 75.0), 0)  # 4.8 s -> 10 s without a beat
    assert [(c.condition, c.active) for c in changes] == [(ASYSTOLE, True), (ASYSTOLE, False)]


def test_lost_samples_are_not_a_pause():
    e = engine(pause_s=3.0)
    e.observe(RwaveResult(beats(0, 5, 0.8), 500, 75.0), 0)
    assert e.observe(RwaveResult([], 900, None, lost_spans=((600, 620),)), 0) == []


@pytest.mark.parametrize(("rate", "condition"), [(35.0, BRADY), (170.0, TACHY)])
def test_heart_rate_out_of_range(rate, condition):
    e = engine(hr_low_bpm=40, hr_high_bpm=150)
    [change] = e.observe(RwaveResult([100, 200], 250, rate), 0)
    assert (change.condition, change.active) == (condition, True)
    [cleared] = e.observe(RwaveResult([300], 350, 80.0), 0)
    assert (cleared.condition, cleared.active) == (condition, False)


def test_the_same_condition_does_not_send_a_second_partial_record_within_retrigger():
    e = engine(pause_s=1.0, retrigger_s=30.0)
    e.observe(RwaveResult([0], 50, None), 0)
    first = e.observe(RwaveResult([], 300, None), 0)
    e.observe(RwaveResult([310], 350, None), 0)
    second = e.observe(RwaveResult([], 600, None), 0)
    assert first[0].partial_record and not second[0].partial_record
    assert e.device_alarm("MDC_EVT_ECG_V_FIB", 700) and not e.device_alarm("MDC_EVT_ECG_V_FIB", 800)


def test_hr_low_must_be_below_hr_high():
    with pytest.raises(ValueError, match="hr_low_bpm"):
        EcgAlarmRules(hr_low_bpm=100, hr_high_bpm=90)


def test_the_excerpt_is_the_last_seconds_before_the_alarm():
    history = ChunkHistory(FS, seconds=3.0)
    for slot in range(10):
        data = np.arange(slot * 100, slot * 100 + 100, dtype=np.int16)[:, None]
        history.add(Chunk(slot, slot * 100, data, 0, 0.0))
    first, samples = history.excerpt(upto_index=850, seconds=3.0)
    assert first == 550 and np.array_equal(samples[:, 0], np.arange(550, 850))
    assert history.chunks[0].first_index >= 400  # older chunks are let go
