"""ACK builder (pure and deterministic: the control id and the time are passed in).

    MSH|^~\\&|<our app>|<our facility>|<MSH-3>|<MSH-4>|<now>||ACK^<trigger>^ACK|<control id>|<MSH-11>|<MSH-12>
    MSA|AA/AE/AR|<received MSH-10>[|<reason>]
    ERR||<segment>^<sequence>^<field>|<0357 code>^<text>^HL70357|E||||<reason>

The ERR layout is the v2.5+ one (ERR-2 location, ERR-3 code, ERR-4 severity, ERR-8 user
message); MSA-3 repeats the reason for senders on older versions. Always standard delimiters
and UTF-8; device-supplied values are escaped.
"""

from __future__ import annotations

from connectors.hl7.dtm import format_dtm
from connectors.hl7.errors import CODE_TEXT, Hl7Error
from connectors.hl7.message import STANDARD, Header, component

ACK_CODES = frozenset({"AA", "AE", "AR"})
_ESCAPES = str.maketrans({"\\": "\\E\\", "|": "\\F\\", "^": "\\S\\", "&": "\\T\\", "~": "\\R\\", "\r": " ", "\n": " "})


def escape(text: str) -> str:
    return text.translate(_ESCAPES)


def _copy(header: Header | None, n: int) -> str:
    """A header field for our ACK: as sent when the delimiters are standard, else its first component."""
    if header is None:
        return ""
    value = header.get(n)
    if header.delims is not STANDARD:
        value = escape(component(value, 1, header.delims))
    return value.replace("\r", "").replace("\n", "")


def build_ack(
    *,
    ack_code: str,
    control_id: str,
    now: float,
    header: Header | None,
    error: Hl7Error | None = None,
    application: str = "DEVSYNC",
    facility: str = "DEVSYNC",
) -> bytes:
    """The ACK for one received message (header None: the message had no readable MSH)."""
    if ack_code not in ACK_CODES:
        raise ValueError(f"ack_code must be one of AA, AE, AR (got {ack_code!r})")
    trigger = escape(header.trigger) if header is not None else ""
    processing = (_copy(header, 11) or "P") if header is not None else "P"
    version = (escape(header.component(12, 1)) or "2.6") if header is not None else "2.6"
    msh = [
        "MSH",
        "^~\\&",
        escape(application),
        escape(facility),
        _copy(header, 3),
        _copy(header, 4),
        format_dtm(now),
        "",
        f"ACK^{trigger}^ACK" if trigger else "ACK",
        escape(control_id),
        processing,
        version,
    ]
    received_id = escape(header.control_id) if header is not None else ""
    msa = ["MSA", ack_code, received_id]
    segments = ["|".join(msh), "|".join(msa)]
    if error is not None:
        reason = escape(error.reason)
        segments[1] += "|" + reason[:200]
        location = ""
        if error.segment:
            location = "^".join(
                [error.segment, str(error.sequence or 1), "" if error.position is None else str(error.position)]
            ).rstrip("^")
        err = ["ERR", "", location, f"{error.code}^{CODE_TEXT.get(error.code, '')}^HL70357", "E", "", "", "", reason]
        segments.append("|".join(err))
    return ("\r".join(segments) + "\r").encode("utf-8")
