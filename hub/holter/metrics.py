"""Prometheus metrics of the Holter service (no patient or task labels)."""

from __future__ import annotations

from prometheus_client import Counter

REQUESTS = Counter("devsync_holter_requests_total", "Holter API requests by outcome code", ["code"])
UPLOAD_BYTES = Counter("devsync_holter_upload_bytes_total", "Bytes accepted through signed upload URLs")
JOBS = Counter("devsync_holter_jobs_total", "Holter jobs finished by a worker, by final state", ["state"])
