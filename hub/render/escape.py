"""Escaping and formatting helpers shared by the HL7 v2 and FHIR renderers (pure, fast).

HL7 v2 delimiters are the defaults every message here declares in MSH-1/MSH-2: `|^~\\&`.
"""

from __future__ import annotations

import math
import time
from decimal import Decimal
from functools import lru_cache

# Escape character first, so the escapes added for the others are not escaped again.
_HL7_ESCAPES = (("\\", "\\E\\"), ("|", "\\F\\"), ("^", "\\S\\"), ("&", "\\T\\"), ("~", "\\R\\"))
_CONTROL = frozenset(chr(c) for c in (*range(0x20), 0x7F))
_SPECIAL = frozenset("\\|^&~") | _CONTROL


def escape_hl7(text: str) -> str:
    """Escape a free-text value for any HL7 v2 field, component or subcomponent.

    Delimiters become \\F\\ \\S\\ \\R\\ \\E\\ \\T\\; control characters (CR and LF, which would end the
    segment, and the MLLP framing bytes 0x0B / 0x1C) become hex escapes \\Xhh\\.
    """
    if not text or _SPECIAL.isdisjoint(text):
        return text
    for raw, escaped in _HL7_ESCAPES:
        text = text.replace(raw, escaped)
    if not _CONTROL.isdisjoint(text):
        text = "".join(f"\\X{ord(c):02X}\\" if c in _CONTROL else c for c in text)
    return text


@lru_cache(maxsize=8192)
def _hl7_second(second: int) -> str:
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(second))


@lru_cache(maxsize=16384)
def hl7_time(epoch_s: float) -> str:
    """UTC epoch seconds -> HL7 DTM `YYYYMMDDHHMMSS.ffff+0000` (0.1 ms resolution)."""
    second, frac = divmod(round(epoch_s * 10000), 10000)
    return f"{_hl7_second(second)}.{frac:04d}+0000"


@lru_cache(maxsize=8192)
def _iso_second(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


@lru_cache(maxsize=16384)
def fhir_time(epoch_s: float) -> str:
    """UTC epoch seconds -> FHIR dateTime/instant `YYYY-MM-DDThh:mm:ss.fff+00:00` (1 ms resolution)."""
    second, millis = divmod(round(epoch_s * 1000), 1000)
    return f"{_iso_second(second)}.{millis:03d}+00:00"


NM_MAX = 16  # HL7 v2.6 NM length


def format_number(value: float) -> str | None:
    """A finite number as HL7 NM text: plain decimal (no exponent), at most 16 characters.

    Python's shortest round-trip repr is used when it fits, so 36.6 stays "36.6" and 80.0 becomes "80";
    otherwise the most significant digits that fit are kept (36.800000000000004 -> "36.8", the noise of
    a unit conversion). Returns None for NaN, infinities and magnitudes that cannot be written in 16
    characters (|value| >= 1e16); see non_finite_flag for the OBX-8 code.
    """
    value = float(value)
    if not math.isfinite(value):
        return None
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    text = repr(value)
    if "e" not in text and len(text) <= NM_MAX:
        return text
    for digits in range(15, 0, -1):
        text = _plain(format(value, f".{digits}g"))
        if len(text) <= NM_MAX:
            return text
    return "0" if abs(value) < 1 else None


def _plain(text: str) -> str:
    if "e" in text:
        text = format(Decimal(text), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def non_finite_flag(value: float) -> str:
    """IHE PCD OBX-8 code for a value format_number cannot write (TF-2 Table B.8.5-7)."""
    if math.isnan(value):
        return "NAN"
    if math.isinf(value):
        return "PINF" if value > 0 else "NINF"
    return "OTH"  # value not in domain: too large for an HL7 NM
