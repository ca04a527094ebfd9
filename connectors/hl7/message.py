"""HL7 v2 message text -> segments and fields, split on the message's own delimiters (pure).

The fast path of the hub: no hl7apy here (about 10 ms a message); splitting on the
delimiters MSH-1/MSH-2 declare costs microseconds. Strictness lives in the decoders, which
check the segments and fields their message type requires.

`segments` holds each segment as a list of fields where index n is field n (for MSH too:
MSH[1] is the field separator, MSH[2] the encoding characters), so `seg[10]` is MSH-10.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property, lru_cache

from connectors.hl7.errors import (
    DATA_TYPE_ERROR,
    REQUIRED_FIELD_MISSING,
    SEGMENT_SEQUENCE,
    TABLE_VALUE_NOT_FOUND,
    Hl7Error,
)

# MSH-18 character set (HL7 table 0211) -> Python codec
CHARSETS = {
    "": "utf-8",
    "ASCII": "ascii",
    "UNICODE UTF-8": "utf-8",
    "UTF-8": "utf-8",
    "8859/1": "latin-1",
    "8859/15": "iso8859-15",
}


@dataclass(frozen=True, eq=False)  # one shared instance per delimiter set (see delimiters()): identity hash
class Delimiters:
    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"


@dataclass(frozen=True)
class Header:
    """The MSH fields an ACK needs; read even from messages that fail to decode."""

    fields: tuple[str, ...]
    delims: Delimiters

    def get(self, n: int) -> str:
        return self.fields[n] if n < len(self.fields) else ""

    def component(self, n: int, c: int) -> str:
        return component(self.get(n), c, self.delims)

    # cached: the decoder, the ACK and the metrics each read them (the dataclass stays frozen:
    # cached_property writes to the instance __dict__, not through __setattr__)
    @cached_property
    def control_id(self) -> str:
        return self.get(10)

    @cached_property
    def message_type(self) -> str:
        return self.component(9, 1)

    @cached_property
    def trigger(self) -> str:
        return self.component(9, 2)

    @cached_property
    def type_name(self) -> str:
        return f"{self.message_type}^{self.trigger}" if self.trigger else self.message_type


@dataclass
class Message:
    header: Header
    segments: list[list[str]]
    charset: str
    _index: dict[str, list[int]] = field(default_factory=dict, repr=False)

    @property
    def delims(self) -> Delimiters:
        return self.header.delims

    def all(self, name: str) -> list[list[str]]:
        if not self._index:
            for i, seg in enumerate(self.segments):
                self._index.setdefault(seg[0], []).append(i)
        return [self.segments[i] for i in self._index.get(name, ())]

    def first(self, name: str) -> list[str] | None:
        found = self.all(name)
        return found[0] if found else None


def field_of(seg: list[str] | None, n: int) -> str:
    return seg[n] if seg is not None and n < len(seg) else ""


def component(value: str, n: int, delims: Delimiters) -> str:
    """Component n (1-based) of the first repetition of a field value."""
    if not value:
        return ""
    if delims.repetition in value:
        value = value.split(delims.repetition, 1)[0]
    if n == 1 and delims.component not in value:
        return value
    parts = value.split(delims.component)
    return parts[n - 1] if n <= len(parts) else ""


def components(value: str, delims: Delimiters) -> list[str]:
    if delims.repetition in value:
        value = value.split(delims.repetition, 1)[0]
    return value.split(delims.component)


def repetitions(value: str, delims: Delimiters) -> list[str]:
    return [v for v in value.split(delims.repetition) if v] if value else []


def unescape(text: str, delims: Delimiters) -> str:
    r"""Resolve HL7 escapes (\F\ \S\ \T\ \R\ \E\ \Xhh..\); other escapes are dropped."""
    esc = delims.escape
    if not text or esc not in text:
        return text
    parts = text.split(esc)
    out = [parts[0]]
    mapping = {"F": delims.field, "S": delims.component, "T": delims.subcomponent, "R": delims.repetition, "E": esc}
    for i in range(1, len(parts), 2):
        token = parts[i]
        if token in mapping:
            out.append(mapping[token])
        elif token.startswith("X") and len(token) % 2 == 1:
            try:
                out.append(bytes.fromhex(token[1:]).decode("latin-1"))
            except ValueError:
                pass
        if i + 1 < len(parts):
            out.append(parts[i + 1])
    return "".join(out)


@lru_cache(maxsize=64)
def delimiters(fs: str, enc: str) -> Delimiters:
    return Delimiters(
        field=fs,
        component=enc[0] if len(enc) > 0 else "^",
        repetition=enc[1] if len(enc) > 1 else "~",
        escape=enc[2] if len(enc) > 2 else "\\",
        subcomponent=enc[3] if len(enc) > 3 else "&",
    )


STANDARD = delimiters("|", "^~\\&")


def read_header(frame: bytes) -> Header | None:
    """MSH of a frame (tolerant: for addressing an ACK even when decoding fails)."""
    start = frame.lstrip(b"\r\n")
    if not start.startswith(b"MSH") or len(start) < 8:
        return None
    end = start.find(b"\r")
    line = (start if end < 0 else start[:end]).decode("latin-1")
    if len(line) < 4:  # "MSH" alone on its line: no field separator (found by tests/fuzz)
        return None
    fs = line[3]
    enc_end = line.find(fs, 4)
    enc = line[4:enc_end] if enc_end > 0 else line[4:]
    delims = delimiters(fs, enc[:4])
    parts = line.split(fs)
    return Header(("MSH", fs, *parts[1:]), delims)


def parse_message(frame: bytes) -> Message:
    """Decode one MLLP frame into segments; Hl7Error names what is wrong (AR for charset/MSH)."""
    header = read_header(frame)
    if header is None:
        head = frame.lstrip(b"\r\n")[:3].decode("latin-1", "replace")
        raise Hl7Error(
            f"message must start with an MSH segment (found '{head}')",
            code=SEGMENT_SEQUENCE,
            ack_code="AR",
            segment="MSH",
        )
    _check_delimiters(header)
    charset = header.get(18).split(header.delims.repetition, 1)[0].strip()
    codec = CHARSETS.get(charset.upper())
    if codec is None:
        raise Hl7Error(
            f"MSH-18 character set '{charset}' is not supported (supported: {', '.join(k for k in CHARSETS if k)})",
            code=TABLE_VALUE_NOT_FOUND,
            ack_code="AR",
            segment="MSH",
            position=18,
        )
    try:
        text = frame.decode(codec)
    except UnicodeDecodeError as exc:
        declared = f"declared '{charset}' in MSH-18" if charset else "no MSH-18, so UTF-8 is assumed"
        raise Hl7Error(
            f"message is not valid {codec.upper()} ({declared}): byte 0x{frame[exc.start]:02x} at offset {exc.start}; "
            f"send UTF-8 or declare the character set in MSH-18 ({', '.join(k for k in CHARSETS if k)})",
            code=DATA_TYPE_ERROR,
            ack_code="AR",
        ) from None
    return Message(header, split_segments(text, header.delims), charset)


def split_segments(text: str, delims: Delimiters) -> list[list[str]]:
    fs = delims.field
    segments: list[list[str]] = []
    for number, raw in enumerate(text.split("\r"), start=1):
        raw = raw.strip("\n")
        if not raw:
            continue
        fields = raw.split(fs)
        name = fields[0]  # a valid id is 3 characters, none of them fs: then this is raw[:3] followed by fs
        if not _is_segment_id(name):
            raise Hl7Error(
                f"segment {number} ('{raw[:12]}...') is not an HL7 segment: expected a 3-character id then '{fs}'",
                code=SEGMENT_SEQUENCE,
                ack_code="AE",
            )
        if name == "MSH":
            fields.insert(1, fs)
        segments.append(fields)
    return segments


_SEGMENT_IDS: set[str] = set()


def _is_segment_id(name: str) -> bool:
    if name in _SEGMENT_IDS:
        return True
    ok = len(name) == 3 and name.isascii() and name.isalnum() and name[0].isalpha() and name.isupper()
    if ok and len(_SEGMENT_IDS) < 1024:
        _SEGMENT_IDS.add(name)
    return ok


@lru_cache(maxsize=64)
def _usable_delimiters(d: Delimiters) -> bool:
    chars = [d.field, d.component, d.repetition, d.escape, d.subcomponent]
    return len(set(chars)) == 5 and not any(c.isalnum() or c in "\r\n " for c in chars)


def _check_delimiters(header: Header) -> None:
    d = header.delims
    if not _usable_delimiters(d):
        raise Hl7Error(
            f"MSH-1/MSH-2 delimiters '{d.field}{header.get(2)}' are invalid: need 5 distinct non-alphanumeric "
            "characters (usually |^~\\&)",
            code=DATA_TYPE_ERROR,
            ack_code="AR",
            segment="MSH",
            position=2,
        )
    for position, what in ((9, "message type"), (10, "message control id"), (12, "version id")):
        if not header.get(position).strip():
            raise Hl7Error(
                f"MSH-{position} ({what}) is required",
                code=REQUIRED_FIELD_MISSING,
                ack_code="AR",
                segment="MSH",
                position=position,
            )
