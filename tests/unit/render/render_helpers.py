"""Helpers for reading rendered HL7 back (python-hl7), shared by the render tests."""

from __future__ import annotations

import hl7

_UNESCAPER = hl7.parse("MSH|^~\\&|")


def segments(message: str, name: str) -> list:
    """python-hl7 segments named `name`, in order."""
    return [s for s in hl7.parse(message) if str(s[0]) == name]


def field(segment, index: int, component: int | None = None) -> str:
    """Unescaped text of field `index` (1-based), optionally one component (1-based)."""
    try:
        value = segment(index)  # 1-based, MSH numbered as in the standard
    except IndexError:
        return ""
    if component is not None:
        parts = str(value).split("^")
        text = parts[component - 1] if len(parts) >= component else ""
    else:
        text = str(value)
    return _UNESCAPER.unescape(text)
