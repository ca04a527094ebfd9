"""Structured logs: `key=value` lines, one stable step name per logger, no PHI by default.

    log = get_logger("normalise")
    log.info("unit converted", event_id=e.event_id, device=e.device.id)

Fields named in PHI_FIELDS are replaced by `[redacted]` unless the runtime setting
`log_patient_identifiers` is on (rules: runtime.log_patient_identifiers).
"""

from __future__ import annotations

import logging
import sys

PHI_FIELDS = frozenset({"patient_id", "patient_name", "mrn", "encounter_id", "patient", "name", "dob"})
_allow_phi = False


def allow_patient_identifiers(allowed: bool) -> None:
    global _allow_phi
    _allow_phi = allowed


def _format_value(key: str, value: object) -> str:
    if key in PHI_FIELDS and not _allow_phi:
        return "[redacted]"
    text = str(value)
    if not text or any(c in text for c in ' ="'):
        text = '"' + text.replace('"', '\\"') + '"'
    return text


class StepLogger:
    def __init__(self, step: str):
        self.step = step
        self._log = logging.getLogger(f"devsync.{step}")

    def _emit(self, level: int, msg: str, fields: dict) -> None:
        if not self._log.isEnabledFor(level):
            return
        parts = [f"step={self.step}", f"msg={_format_value('msg', msg)}"]
        parts += [f"{k}={_format_value(k, v)}" for k, v in fields.items()]
        self._log.log(level, " ".join(parts))

    def debug(self, msg: str, **fields: object) -> None:
        self._emit(logging.DEBUG, msg, fields)

    def info(self, msg: str, **fields: object) -> None:
        self._emit(logging.INFO, msg, fields)

    def warning(self, msg: str, **fields: object) -> None:
        self._emit(logging.WARNING, msg, fields)

    def error(self, msg: str, **fields: object) -> None:
        self._emit(logging.ERROR, msg, fields)


def get_logger(step: str) -> StepLogger:
    return StepLogger(step)


def configure_logging(level: str = "INFO", stream=None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter("ts=%(asctime)s level=%(levelname)s %(message)s"))
    root = logging.getLogger("devsync")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
