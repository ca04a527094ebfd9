"""Errors of the Holter service. Each has a stable `code` (the JSON error body's `code`) and an HTTP status."""

from __future__ import annotations

from hub.errors import HubError

STATUS = {
    "unauthorized": 401,
    "forbidden": 403,
    "unknown_task": 404,
    "not_found": 404,
    "wrong_state": 409,
    "upload_url_invalid": 403,
    "upload_url_expired": 410,
    "upload_url_used": 409,
    "file_too_large": 413,
    "unsupported_format": 422,
    "checksum_mismatch": 422,
    "truncated_file": 422,
    "size_mismatch": 422,
    "sampling_rate_mismatch": 422,
    "duration_too_long": 422,
    "invalid_request": 422,
    "rate_limited": 429,
}


class HolterError(HubError):
    """A request or job error with a machine-readable code and a message that says what would be accepted."""

    def __init__(self, code: str, message: str, *, retry_after: float | None = None):
        self.code = code
        self.message = message
        self.retry_after = retry_after
        super().__init__(f"{code}: {message}")

    @property
    def status(self) -> int:
        return STATUS.get(self.code, 400)


class JobCancelled(HubError):
    """Raised inside a worker when the job was cancelled between two chunks."""


class JobLeaseLost(HubError):
    """Raised inside a worker when another service instance owns the job now (restart)."""
