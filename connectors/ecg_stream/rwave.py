"""R waves and heart rate on a live ECG stream, with the shared detector (hub.ecg.analysis, XQRS).

    det = RwaveDetector(sample_rate_hz=500, rules=rules.ecg.rwave)
    det.push(first_index, lead_counts, factor_uv)       # one lead, per released chunk (MISSING allowed)
    if det.due():
        window = det.snapshot()                         # cheap copy, taken on the event loop
        found = find_peaks(window)                      # heavy: run it in a worker thread
        result = det.accept(found)                      # new R peaks (absolute sample indices), heart rate

The detector sees the last `window_s` seconds every `detect_every_s`; peaks in the last
`MARGIN_S` of a window wait for the next run (the detector needs to see past them) and a
peak closer than REFRACTORY_S to the previous one is the same beat seen again.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from hub.ecg.analysis import detect_qrs, heart_rate_series
from hub.render.sampled_data import MISSING_SAMPLE
from hub.rules.ecg import EcgRwaveRules

MARGIN_S = 0.3
REFRACTORY_S = 0.2


@dataclass(frozen=True)
class Window:
    first_index: int
    signal_mv: np.ndarray
    fs: float
    lost: np.ndarray  # bool: samples missing (zero-filled in signal_mv)


@dataclass(frozen=True)
class RwaveResult:
    peaks: list[int]  # new R peaks, absolute sample indices
    analysed_upto: int  # sample index up to which beats are final
    heart_rate_bpm: float | None
    lost_spans: tuple[tuple[int, int], ...] = ()  # recent [start, end) sample spans that were missing

    def lost_between(self, a: int, b: int) -> bool:
        """Were samples missing between indices a and b (then no pause can be claimed there)?"""
        return any(start < b and end > a for start, end in self.lost_spans)


# detect_qrs swaps sys.stdout while XQRS runs (contextlib.redirect_stdout is process-wide): two
# threads doing that at once can leave stdout pointing at a dead buffer. One detection at a time.
_DETECT_LOCK = threading.Lock()


def find_peaks(window: Window) -> np.ndarray:
    """Absolute indices of the R peaks in a window (the heavy part; safe to run in worker threads)."""
    with _DETECT_LOCK:
        return detect_qrs(window.signal_mv, window.fs) + window.first_index


def warm_up_window() -> Window:
    """A small window whose detection loads the detector (used to start worker processes early)."""
    return Window(0, np.zeros(1000), 250.0, np.zeros(1000, dtype=bool))


class RwaveDetector:
    def __init__(self, sample_rate_hz: float, rules: EcgRwaveRules):
        self.fs = sample_rate_hz
        self.rules = rules
        self.size = int(rules.window_s * sample_rate_hz)
        self.every = max(1, int(rules.detect_every_s * sample_rate_hz))
        self.signal = np.zeros(0)
        self.lost = np.zeros(0, dtype=bool)
        self.first_index = 0
        self.end_index = 0
        self.next_run = 0
        self.last_peak: int | None = None
        self.recent: list[int] = []
        self.lost_spans: list[tuple[int, int]] = []

    def push(self, first_index: int, counts: np.ndarray, factor_uv: float) -> None:
        if self.end_index == 0 and len(self.signal) == 0:
            self.first_index = self.end_index = first_index
            self.next_run = first_index + self.size // 2
        lost = counts == MISSING_SAMPLE
        mv = np.where(lost, 0.0, counts.astype(np.float64) * factor_uv / 1000.0)
        if lost.any():
            edges = np.flatnonzero(np.diff(np.concatenate(([0], lost.astype(np.int8), [0]))))
            self.lost_spans = (self.lost_spans + [(first_index + int(a), first_index + int(b))
                                                  for a, b in zip(edges[::2], edges[1::2], strict=True)])[-64:]
        self.signal = np.concatenate((self.signal, mv))[-self.size:]
        self.lost = np.concatenate((self.lost, lost))[-self.size:]
        self.end_index = first_index + len(counts)
        self.first_index = self.end_index - len(self.signal)

    def due(self) -> bool:
        return self.rules.enabled and self.end_index >= self.next_run and len(self.signal) >= 3 * self.fs

    def snapshot(self) -> Window:
        self.next_run = self.end_index + self.every
        return Window(self.first_index, self.signal.copy(), self.fs, self.lost.copy())

    def accept(self, window: Window, peaks: np.ndarray) -> RwaveResult:
        upto = window.first_index + len(window.signal_mv) - int(MARGIN_S * self.fs)
        refractory = int(REFRACTORY_S * self.fs)
        new = []
        for peak in (int(p) for p in peaks):
            if peak >= upto or (self.last_peak is not None and peak <= self.last_peak + refractory):
                continue
            new.append(peak)
            self.last_peak = peak
        self.recent = (self.recent + new)[-(self.rules.hr_beats + 1):]
        rate = None
        if len(self.recent) >= 2:
            _, bpm = heart_rate_series(np.asarray(self.recent), self.fs)
            rate = float(np.median(bpm)) if len(bpm) else None  # median: one missed or extra beat does not move it
        return RwaveResult(new, upto, rate, tuple(self.lost_spans))
