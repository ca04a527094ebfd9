"""Errors of the ECG file readers and writers (both are HubErrors; see hub/errors.py)."""

from __future__ import annotations

from hub.errors import DecodeError, HubError


class EcgFormatError(DecodeError):
    """A file that cannot be read as the ECG format it claims (or any known format)."""

    def __init__(self, path: object, reason: str, *, field: str | None = None):
        self.path = str(path)
        super().__init__(f"{path}: {reason}", field=field)


class EcgWriteError(HubError):
    """A record the chosen format cannot carry (too many leads, rate out of range, ...)."""

    def __init__(self, fmt: str, reason: str):
        self.format = fmt
        self.reason = reason
        super().__init__(f"cannot write {fmt}: {reason}")
