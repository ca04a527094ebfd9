"""Request and response bodies of the Holter API (pydantic v2; they make the OpenAPI document)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Priority = Literal["normal", "high", "urgent"]
State = Literal["pending", "uploading", "preprocessing", "ai_analyzing", "doctor_reviewing", "completed", "failed", "cancelled"]


class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine-readable error code, e.g. checksum_mismatch, unknown_task, wrong_state.")
    message: str = Field(description="What went wrong, where, and what would be accepted.")


class UploadUrlRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    filename: str = Field(min_length=1, max_length=255)
    file_size: int = Field(gt=0, description="Exact size of the file in bytes.")
    file_format: str = Field(description="mit (zip/tar of .hea+.dat[+.atr]), edf, csv, aecg, scp, dicom, philips, ecgaware.")
    duration_hours: float | None = Field(None, gt=0, le=24 * 7, description="Recording length as the client knows it.")
    checksum: str = Field(pattern=r"^[0-9a-fA-F]{32}$", description="MD5 of the file, hex.")


class UploadUrlResponse(BaseModel):
    task_id: str
    upload_url: str
    method: Literal["PUT"] = "PUT"
    headers: dict[str, str]
    expires_at: float = Field(description="Epoch seconds after which the URL is refused.")
    max_file_size: int


class UploadResponse(BaseModel):
    task_id: str
    received_bytes: int
    checksum: str
    status: State


class PatientInfo(BaseModel):
    model_config = ConfigDict(extra="allow")
    patient_id: str | None = Field(None, max_length=100)
    age: float | None = Field(None, ge=0, le=150)
    sex: Literal["M", "F", "U"] | None = None


class AnalysisOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    arrhythmia_detection: bool = True
    st_analysis: bool = False
    hrv_analysis: bool = True
    pacemaker_detection: bool = False
    doctor_review: bool = False
    report_language: Literal["en"] = Field("en", description="Reports are written in English only.")


class SubmitRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task_id: str = Field(min_length=1, max_length=40)
    sampling_rate: float | None = Field(None, gt=0, le=100_000, description="Hz; must match the file's own rate where it has one.")
    gain: float | None = Field(None, gt=0, description="Counts per mV for CSV files holding raw counts (ignored for calibrated formats).")
    zero_voltage: float | None = Field(None, description="Count that means 0 mV (CSV raw counts).")
    patient_info: PatientInfo | None = None
    analysis_options: AnalysisOptions = Field(default_factory=AnalysisOptions)
    callback_url: str | None = Field(None, pattern=r"^https?://", max_length=2000)
    priority: Priority = "normal"


class SubmitResponse(BaseModel):
    task_id: str
    status: State
    queue_position: int | None
    priority: Priority


class StatusResponse(BaseModel):
    task_id: str
    status: State
    progress: dict[str, float] = Field(description="Per-stage percent: uploading, preprocessing, ai_analyzing, doctor_reviewing.")
    queue_position: int | None = None
    priority: Priority
    error: ErrorBody | None = None
    created_at: float
    updated_at: float
    webhooks: list[dict[str, Any]] = []


class ReviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reviewer: str = Field(min_length=1, max_length=200)
    action: Literal["confirm", "amend"]
    conclusion: str | None = Field(None, max_length=5000, description="Required when amending.")
    notes: str | None = Field(None, max_length=5000)


class CancelResponse(BaseModel):
    task_id: str
    status: State
