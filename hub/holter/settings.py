"""Every user-settable number of the Holter service, with its default.

Loaded from a YAML/JSON file (`devsync holter serve --settings FILE`) and/or the command line;
unknown keys are errors that name the key. No hub rules section is needed: the service is a
separate API, not a step of the event pipeline.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hub.errors import RuleError


class HolterSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    data_dir: Path = Field(Path("holter-data"), description="Folder for uploads, work files, reports and the SQLite database.")
    database_url: str | None = Field(None, description="SQLAlchemy URL (e.g. postgresql+psycopg://host/db); default SQLite in data_dir.")
    public_base_url: str | None = Field(None, description="Base URL clients use to reach the API (for upload and image URLs); default: the request's own base URL.")
    # Workers
    workers: int = Field(2, ge=1, le=64, description="Analysis jobs running at once (one process each).")
    dispatch_interval_s: float = Field(0.2, gt=0, le=60, description="How often the dispatcher looks for queued jobs and finished workers.")
    # Uploads
    max_upload_bytes: int = Field(2 * 1024**3, ge=1024, description="Largest accepted upload (bytes).")
    upload_url_ttl_s: int = Field(3600, ge=10, le=7 * 86400, description="Lifetime of a signed upload URL (seconds).")
    max_duration_hours: float = Field(24 * 7, gt=0, description="Longest recording accepted (hours).")
    sampling_rate_tolerance: float = Field(0.005, ge=0, le=0.1, description="Allowed relative difference between the submitted and the file's sampling rate.")
    # Analysis
    chunk_s: float = Field(300.0, ge=5, le=3600, description="Seconds of signal analysed per chunk (memory is bounded by this).")
    overlap_s: float = Field(5.0, ge=1, le=60, description="Seconds read on each side of a chunk so edge beats are detected with context.")
    quality_window_s: float = Field(10.0, ge=1, le=60, description="Window for the data-quality check (flat line, implausible amplitude).")
    flat_ptp_mv: float = Field(0.02, ge=0, description="A window whose peak-to-peak amplitude is below this (mV) is a flat line (lead off).")
    max_ptp_mv: float = Field(10.0, gt=0, description="A window whose peak-to-peak amplitude exceeds this (mV) is artefact.")
    pause_threshold_s: float = Field(2.0, ge=1.0, le=10.0, description="An RR interval at least this long is a pause (seconds).")
    min_rr_s: float = Field(0.2, gt=0, description="Shorter RR intervals (above 300 bpm) are not used for heart rate.")
    max_rr_s: float = Field(6.0, gt=0, description="Longer RR intervals are treated as signal loss, not heart rate.")
    hr_bin_s: float = Field(60.0, ge=10, le=3600, description="Bin for the heart-rate trend and min/max heart rate (seconds).")
    hr_bin_min_coverage: float = Field(0.5, ge=0, le=1, description="Fraction of a bin covered by RR intervals for it to count in min/max HR.")
    brady_bpm: float = Field(60.0, gt=0, description="Heart rate below this is bradycardia in the distribution.")
    tachy_bpm: float = Field(100.0, gt=0, description="Heart rate above this is tachycardia in the distribution.")
    nn_min_s: float = Field(0.3, gt=0, description="Shortest RR interval accepted as normal-to-normal for HRV.")
    nn_max_s: float = Field(2.0, gt=0, description="Longest RR interval accepted as normal-to-normal for HRV.")
    nn_max_change: float = Field(0.2, gt=0, le=1, description="NN filter: an RR differing from the previous accepted one by more than this fraction is excluded.")
    hrv_segment_s: float = Field(300.0, ge=60, description="Segment length for SDANN and SDNN index (seconds).")
    hrv_segment_min_coverage: float = Field(0.5, ge=0, le=1, description="Fraction of a segment covered by NN intervals for it to count.")
    lomb_step_hz: float = Field(0.0005, gt=0, le=0.01, description="Frequency step of the Lomb-Scargle spectrum.")
    af_window_beats: int = Field(128, ge=16, le=1024, description="RR intervals per AF window (Dash et al. 2009 use 128).")
    af_step_beats: int = Field(32, ge=1, le=1024, description="Step between AF windows (beats).")
    af_trim: int = Field(8, ge=0, le=64, description="Largest and smallest RR intervals removed from each window before nRMSSD and entropy.")
    af_nrmssd_min: float = Field(0.1, ge=0, description="AF needs RMSSD / mean RR above this.")
    af_entropy_min: float = Field(0.7, ge=0, le=1, description="AF needs the normalised Shannon entropy of the RR histogram above this.")
    af_tpr_min: float = Field(0.54, ge=0, le=1, description="AF needs the turning-point ratio at least this.")
    af_tpr_max: float = Field(0.77, ge=0, le=1, description="AF needs the turning-point ratio at most this.")
    af_min_episode_s: float = Field(30.0, ge=0, description="Shortest AF episode reported (seconds).")
    strips: int = Field(3, ge=1, le=20, description="Representative strips in result and standard report.")
    strip_s: float = Field(10.0, ge=2, le=60, description="Strip length (seconds).")
    # Webhooks
    webhook_attempts: int = Field(6, ge=1, le=20, description="Delivery attempts per webhook before it is given up.")
    webhook_backoff_s: float = Field(1.0, gt=0, description="First retry delay; doubles each attempt.")
    webhook_backoff_max_s: float = Field(300.0, gt=0, description="Longest delay between attempts.")
    webhook_timeout_s: float = Field(10.0, gt=0, description="Timeout of one delivery attempt.")
    # Auth
    default_rate_limit_per_minute: int = Field(600, ge=1, description="Requests per minute per API key (keys may have their own).")


def load_settings(path: str | Path | None = None, **overrides) -> HolterSettings:
    """Settings from a YAML/JSON file (optional) with keyword overrides (None values are ignored)."""
    data: dict = {}
    if path:
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise RuleError(f"{path}: cannot read Holter settings: {exc}") from exc
        if not isinstance(data, dict):
            raise RuleError(f"{path}: Holter settings must be a mapping of name: value")
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return HolterSettings.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']} (got {e.get('input')!r})" for e in exc.errors())
        raise RuleError(f"{path or 'holter settings'}: {problems}") from exc
