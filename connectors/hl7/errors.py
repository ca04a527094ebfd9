"""HL7 decode errors that become an ACK: AE/AR, an HL7 table 0357 code and where it happened."""

from __future__ import annotations

from hub.errors import DecodeError

# HL7 table 0357 (message error condition codes)
SEGMENT_SEQUENCE = "100"
REQUIRED_FIELD_MISSING = "101"
DATA_TYPE_ERROR = "102"
TABLE_VALUE_NOT_FOUND = "103"
UNSUPPORTED_MESSAGE_TYPE = "200"
UNSUPPORTED_EVENT_CODE = "201"
UNSUPPORTED_PROCESSING_ID = "202"
UNSUPPORTED_VERSION_ID = "203"
APPLICATION_INTERNAL_ERROR = "207"

CODE_TEXT = {
    SEGMENT_SEQUENCE: "Segment sequence error",
    REQUIRED_FIELD_MISSING: "Required field missing",
    DATA_TYPE_ERROR: "Data type error",
    TABLE_VALUE_NOT_FOUND: "Table value not found",
    UNSUPPORTED_MESSAGE_TYPE: "Unsupported message type",
    UNSUPPORTED_EVENT_CODE: "Unsupported event code",
    UNSUPPORTED_PROCESSING_ID: "Unsupported processing id",
    UNSUPPORTED_VERSION_ID: "Unsupported version id",
    APPLICATION_INTERNAL_ERROR: "Application internal error",
}


class Hl7Error(DecodeError):
    """A message the hub will not take, with what the ACK must say.

    ack_code: AE (content error: fix and resend) or AR (rejected: type, framing, charset).
    code: HL7 table 0357 code for ERR-3. segment/sequence/position: ERR-2 location
    (segment id, 1-based occurrence of that segment, field number); reason: ERR-8 text.
    """

    def __init__(
        self,
        reason: str,
        *,
        code: str,
        ack_code: str = "AE",
        segment: str | None = None,
        sequence: int | None = None,
        position: int | None = None,
    ):
        self.code = code
        self.ack_code = ack_code
        self.segment = segment
        self.sequence = sequence
        self.position = position
        field = f"{segment}-{position}" if segment and position is not None else segment
        super().__init__(reason, field=field)

    @property
    def where(self) -> str:
        if not self.segment:
            return "message"
        plain = not self.sequence or self.sequence == 1 and self.segment != "OBX"
        text = self.segment if plain else f"{self.segment}[{self.sequence}]"
        return f"{text}-{self.position}" if self.position is not None else text


def label(segment: str, position: int, sequence: int = 1) -> str:
    """'OBX[3]-5', 'OBR-7', 'OBR[2]-7': how messages name a field."""
    return f"{segment}[{sequence}]-{position}" if segment == "OBX" or sequence > 1 else f"{segment}-{position}"


def missing(segment: str, position: int, what: str, sequence: int = 1, *, hint: str = "") -> Hl7Error:
    label_text = label(segment, position, sequence)
    text = f"{label_text} ({what}) is required" + (f"; {hint}" if hint else "")
    return Hl7Error(text, code=REQUIRED_FIELD_MISSING, segment=segment, sequence=sequence, position=position)


def bad_value(segment: str, position: int, what: str, sequence: int = 1) -> Hl7Error:
    return Hl7Error(what, code=DATA_TYPE_ERROR, segment=segment, sequence=sequence, position=position)
