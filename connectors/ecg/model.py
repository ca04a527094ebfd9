"""The in-memory ECG record every reader produces and every writer consumes.

Samples are kept as the device sent them: integers per lead with a scale
(physical units per count), a baseline (count that means zero) and a unit, so
`physical = (digital - baseline) * scale`. Float sources (CSV) are quantised
losslessly at the finest decimal step they use. All leads of a record share
one sample rate and one length (a reader that meets anything else says so).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from datetime import date, datetime

import numpy as np

# Physical unit -> factor to microvolts.
UNIT_TO_UV = {"uv": 1.0, "µv": 1.0, "μv": 1.0, "mv": 1000.0, "v": 1e6, "nv": 1e-3}

STANDARD_LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
_CANONICAL = {name.lower(): name for name in STANDARD_LEADS}
_CANONICAL.update({"mlii": "MLII", "mli": "MLI", "mliii": "MLIII", "vx": "X", "vy": "Y", "vz": "Z", "x": "X", "y": "Y", "z": "Z"})


def canonical_lead_name(name: str) -> str:
    """`lead ii`, `II`, `ii`, `Lead II (Einthoven)`, `MDC_ECG_LEAD_II`, `ECG II` -> `II`; unknown names pass through."""
    text = name.strip()
    key = re.sub(r"\s*\(.*\)$", "", text)
    key = re.sub(r"^(MDC_ECG_LEAD_|LEAD[\s_-]*|ECG[\s_-]+)", "", key, flags=re.IGNORECASE).strip()
    return _CANONICAL.get(key.lower(), text)


@dataclass(frozen=True)
class Lead:
    name: str
    digital: np.ndarray  # integer counts (int32, int64 where a source needs it)
    scale: float  # physical units per count
    baseline: float = 0.0  # count that means 0 physical
    unit: str = "uV"

    def physical(self) -> np.ndarray:
        return (self.digital.astype(np.float64) - self.baseline) * self.scale

    def microvolts(self) -> np.ndarray:
        """Samples in µV (ECG leads); non-voltage leads come back in their own unit."""
        return self.physical() * UNIT_TO_UV.get(self.unit.lower(), 1.0)

    @property
    def scale_uv(self) -> float:
        return self.scale * UNIT_TO_UV.get(self.unit.lower(), 1.0)


@dataclass(frozen=True)
class Patient:
    id: str = ""
    name: str = ""
    sex: str = ""  # "M", "F", "U" or ""
    birth_date: date | None = None
    age_years: float | None = None


@dataclass(frozen=True)
class Device:
    manufacturer: str = ""
    model: str = ""
    serial: str = ""
    software: str = ""


@dataclass(frozen=True)
class Annotation:
    """A point or interval on the record. `code` is the format's code (WFDB symbol, MDC term, ...)."""

    sample: int
    code: str
    text: str = ""
    end_sample: int | None = None
    lead: str | None = None


@dataclass(frozen=True)
class Measurement:
    name: str
    value: float
    unit: str = ""
    lead: str | None = None


@dataclass(frozen=True)
class Session:
    """Recording-session context (ecgAware): where, why and under which protocol."""

    location: str = ""
    site: str = ""
    clinical_protocol: str = ""
    alarm: str = ""  # alarm code/text that triggered the record, empty when none
    alarm_time: datetime | None = None
    study_id: str = ""
    record_id: str = ""
    partial: bool = False  # an alarm-triggered excerpt sent ahead of the full record
    segment: int | None = None  # piece number when a long record travels in pieces (e.g. 30 s)


@dataclass(frozen=True)
class EcgRecord:
    leads: tuple[Lead, ...]
    sample_rate: float
    start_time: datetime | None = None  # as recorded (naive = device local time)
    patient: Patient = field(default_factory=Patient)
    device: Device = field(default_factory=Device)
    annotations: tuple[Annotation, ...] = ()
    measurements: tuple[Measurement, ...] = ()
    interpretation: tuple[str, ...] = ()
    session: Session = field(default_factory=Session)
    source_format: str = ""

    def __post_init__(self) -> None:
        lengths = {len(lead.digital) for lead in self.leads}
        if len(lengths) > 1:
            raise ValueError(f"all leads must have one length, got {sorted(lengths)}")
        if self.sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {self.sample_rate}")

    @property
    def n_samples(self) -> int:
        return len(self.leads[0].digital) if self.leads else 0

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.sample_rate

    @property
    def lead_names(self) -> list[str]:
        return [lead.name for lead in self.leads]

    def lead(self, name: str) -> Lead:
        wanted = canonical_lead_name(name)
        for lead in self.leads:
            if lead.name == name or canonical_lead_name(lead.name) == wanted:
                return lead
        raise KeyError(f"no lead {name!r} (leads: {', '.join(self.lead_names)})")

    def with_changes(self, **changes) -> EcgRecord:
        return replace(self, **changes)

    def slice(self, start: int, stop: int) -> EcgRecord:
        """Samples [start, stop) with annotations shifted to the new origin."""
        leads = tuple(replace(lead, digital=lead.digital[start:stop]) for lead in self.leads)
        anns = tuple(
            replace(a, sample=a.sample - start, end_sample=None if a.end_sample is None else a.end_sample - start)
            for a in self.annotations
            if start <= a.sample < stop
        )
        return replace(self, leads=leads, annotations=anns)


def quantise_physical(values: np.ndarray, scale: float, baseline: float = 0.0) -> np.ndarray:
    return np.rint(np.asarray(values, dtype=np.float64) / scale + baseline).astype(np.int64)


INT16_SAFE = 32000  # requantised counts stay within +-32000, so header ranges (EDF) are round numbers


def fit_int16(lead: Lead, *, integer_baseline: bool = False) -> Lead:
    """Return `lead` with counts inside int16; requantises (coarser scale, baseline 0) only when it must.

    Formats with an integer baseline (WFDB, DICOM) pass `integer_baseline=True`: a fractional
    baseline is then folded into the counts, which costs at most half a count.
    """
    fits = lead.digital.size == 0 or (lead.digital.min() >= -32768 and lead.digital.max() <= 32767)
    if fits and (not integer_baseline or float(lead.baseline).is_integer()):
        return replace(lead, digital=lead.digital.astype(np.int32))
    phys = lead.physical()
    scale = lead.scale
    peak = float(np.max(np.abs(phys))) if len(phys) else 0.0
    if peak / scale > INT16_SAFE:
        scale = _round_up_3_digits(peak / INT16_SAFE)
    return replace(lead, digital=quantise_physical(phys, scale).astype(np.int32), scale=scale, baseline=0.0)


def _round_up_3_digits(value: float) -> float:
    """Round a scale up to 3 significant digits, so header fields (EDF's 8 characters, DICOM DS) hold it exactly."""
    step = 10.0 ** (math.floor(math.log10(value)) - 2)
    return math.ceil(value / step - 1e-9) * step
