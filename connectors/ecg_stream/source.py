"""Real ECG as a simulator's signal source: a record resampled, quantised and cut to loop seamlessly.

    source = load_source(path, sample_rate_hz=500, leads=STANDARD_12)   # PTB s0010_re: 15 leads at 1000 Hz
    block = source.take(first_index, n)                                   # (n, leads) int16 counts, looping

The loop runs from the first to the last detected R peak of the record, so the seam falls
between two beats and the looped signal keeps real beat morphology and rhythm.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from connectors.ecg import read_ecg
from connectors.ecg.model import EcgRecord
from hub.render.sampled_data import mdc_lead_ref

STANDARD_12 = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")


@dataclass(frozen=True)
class EcgSource:
    counts: np.ndarray  # (n, leads) int16
    sample_rate_hz: float
    leads: tuple[str, ...]  # MDC lead names
    factor_uv: float  # microvolts per count

    def take(self, first_index: int, n: int) -> np.ndarray:
        idx = (np.arange(first_index, first_index + n)) % len(self.counts)
        return self.counts[idx]

    def lead_index(self, name: str) -> int:
        return self.leads.index(mdc_lead_ref(name))


def resample(values: np.ndarray, source_hz: float, target_hz: float) -> np.ndarray:
    """Polyphase resampling along axis 0 (with its anti-alias filter); unchanged when the rates match."""
    if abs(source_hz - target_hz) < 1e-9:
        return values
    from scipy.signal import resample_poly

    ratio = Fraction(target_hz / source_hz).limit_denominator(1000)
    return resample_poly(values, ratio.numerator, ratio.denominator, axis=0)


def source_from_record(record: EcgRecord, *, sample_rate_hz: float | None = None,
                       leads: tuple[str, ...] | None = None, factor_uv: float = 1.0) -> EcgSource:
    chosen = [record.lead(name) for name in leads] if leads else list(record.leads)
    rate = float(sample_rate_hz or record.sample_rate)
    physical = np.column_stack([lead.microvolts() for lead in chosen])
    physical = resample(physical, record.sample_rate, rate)
    counts = np.clip(np.rint(physical / factor_uv), -32767, 32767).astype(np.int16)
    counts = loop_between_beats(counts, rate, [lead.name for lead in chosen])
    return EcgSource(counts, rate, tuple(mdc_lead_ref(lead.name) for lead in chosen), factor_uv)


def loop_between_beats(counts: np.ndarray, rate: float, names: list[str]) -> np.ndarray:
    from hub.ecg.analysis import PREFERRED_LEADS, detect_qrs

    column = next((names.index(n) for n in PREFERRED_LEADS if n in names), 0)
    peaks = detect_qrs(counts[:, column].astype(np.float64) / 1000.0, rate)
    if len(peaks) < 3:
        return counts
    # start half way between the first two beats, end at the same phase before the last beat
    start = int((peaks[0] + peaks[1]) // 2)
    end = int((peaks[-2] + peaks[-1]) // 2)
    return counts[start:end]


def load_source(path: str | Path, *, sample_rate_hz: float | None = None, leads: tuple[str, ...] | None = None,
                factor_uv: float = 1.0) -> EcgSource:
    return source_from_record(read_ecg(path), sample_rate_hz=sample_rate_hz, leads=leads, factor_uv=factor_uv)
