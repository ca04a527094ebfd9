"""HL7 v2 DTM/TS <-> UTC epoch seconds (pure).

DTM is YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]. A value without an offset is local
time of the sender: the caller passes the offset to assume (the one MSH-7 carries, else
connectors.mllp.assume_utc_offset from the rules).
"""

from __future__ import annotations

import calendar
import time
from functools import lru_cache


class DtmError(ValueError):
    pass


def parse_offset(text: str) -> int:
    """'+0530' / '-0600' -> minutes east of UTC."""
    if len(text) != 5 or text[0] not in "+-" or not text[1:].isdecimal():
        raise DtmError(f"bad UTC offset '{text}' (expected +HHMM or -HHMM)")
    hours, minutes = int(text[1:3]), int(text[3:5])
    if hours > 14 or minutes > 59:
        raise DtmError(f"UTC offset '{text}' out of range")
    return (hours * 60 + minutes) * (1 if text[0] == "+" else -1)


def split_offset(text: str) -> tuple[str, int | None]:
    for sign in "+-":
        at = text.find(sign)
        if at >= 0:
            return text[:at], parse_offset(text[at:])
    return text, None


@lru_cache(maxsize=8192)
def parse_dtm(text: str, default_offset_min: int = 0) -> float:
    """DTM -> epoch seconds. Raises DtmError with what is wrong."""
    body, offset = split_offset(text.strip())
    if offset is None:
        offset = default_offset_min
    whole, _, fraction = body.partition(".")
    if not whole.isdecimal() or len(whole) not in (4, 6, 8, 10, 12, 14) or (fraction and not fraction.isdecimal()):
        raise DtmError(f"'{text}' is not an HL7 date/time (YYYYMMDDHHMMSS[.SSSS][+/-ZZZZ])")
    if fraction and len(whole) != 14:
        raise DtmError(f"'{text}': fractional seconds need a full YYYYMMDDHHMMSS")
    midnight = day_start(whole[:8])
    if midnight is None:
        raise DtmError(f"'{text}': no such date")
    hour, minute, second = int(whole[8:10] or 0), int(whole[10:12] or 0), int(whole[12:14] or 0)
    if hour > 23 or minute > 59 or second > 60:
        raise DtmError(f"'{text}': no such time of day")
    epoch = midnight + hour * 3600 + minute * 60 + second - offset * 60
    return epoch + (float("0." + fraction) if fraction else 0.0)


@lru_cache(maxsize=4096)
def day_start(date: str) -> int | None:
    """'YYYY[MM[DD]]' (digits) -> epoch seconds of that day's 00:00 UTC; None when there is no such date.
    Cached apart from parse_dtm: every message has new times, but they fall on a few days."""
    year, month, day = int(date[0:4]), int(date[4:6] or 1), int(date[6:8] or 1)
    if not (1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]):
        return None
    return calendar.timegm((year, month, day, 0, 0, 0, 0, 0, 0))


def dtm_offset(text: str) -> int | None:
    """The offset a DTM carries (minutes), or None."""
    try:
        return split_offset(text.strip())[1]
    except DtmError:
        return None


def format_dtm(epoch: float, offset_min: int = 0) -> str:
    """epoch seconds -> YYYYMMDDHHMMSS+ZZZZ (whole seconds)."""
    return _format_second(int(epoch), offset_min)


@lru_cache(maxsize=64)  # an ACK per message carries the time: the same second many times over
def _format_second(second: int, offset_min: int) -> str:
    local = time.gmtime(second + offset_min * 60)
    sign = "+" if offset_min >= 0 else "-"
    hours, minutes = divmod(abs(offset_min), 60)
    return time.strftime("%Y%m%d%H%M%S", local) + f"{sign}{hours:02d}{minutes:02d}"


def format_dtm_ms(epoch: float) -> str:
    """epoch seconds -> YYYYMMDDHHMMSS.SSS+0000 (UTC, milliseconds)."""
    whole = int(epoch)
    millis = round((epoch - whole) * 1000)
    if millis == 1000:
        whole, millis = whole + 1, 0
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(whole)) + f".{millis:03d}+0000"
