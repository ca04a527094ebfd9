"""Message type -> decoder: what the MLLP listener calls for every frame (pure)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from connectors.hl7.adt import ACTIONS, decode_adt
from connectors.hl7.common import DecodeContext
from connectors.hl7.errors import UNSUPPORTED_EVENT_CODE, UNSUPPORTED_MESSAGE_TYPE, UNSUPPORTED_VERSION_ID, Hl7Error
from connectors.hl7.message import Message, parse_message
from connectors.hl7.pcd01 import decode_observations
from connectors.hl7.pcd04 import decode_alarms
from hub.events import Event

Decoder = Callable[[Message, DecodeContext], list[Event]]

DECODERS: dict[tuple[str, str], Decoder] = {
    ("ORU", "R01"): decode_observations,
    ("ORU", "R40"): decode_alarms,
    ("ORU", "R42"): partial(decode_observations, pump_event=True),
    **{("ADT", trigger): decode_adt for trigger in ACTIONS},
}
SUPPORTED = ", ".join(f"{t}^{e}" for t, e in sorted(DECODERS))


def decode_message(msg: Message, ctx: DecodeContext) -> list[Event]:
    """Check version and type, then decode. Raises Hl7Error (AR for version/type, AE for content)."""
    header = msg.header
    version = header.component(12, 1).strip()
    if not version.startswith("2."):
        raise Hl7Error(
            f"MSH-12 version '{version}' is not supported (supported: HL7 v2.x, e.g. 2.6)",
            code=UNSUPPORTED_VERSION_ID,
            ack_code="AR",
            segment="MSH",
            position=12,
        )
    kind, trigger = header.message_type.strip(), header.trigger.strip()
    decoder = DECODERS.get((kind, trigger))
    if decoder is None:
        known_type = any(t == kind for t, _ in DECODERS)
        raise Hl7Error(
            f"unsupported message type {header.type_name} (supported: {SUPPORTED})",
            code=UNSUPPORTED_EVENT_CODE if known_type else UNSUPPORTED_MESSAGE_TYPE,
            ack_code="AR",
            segment="MSH",
            position=9,
        )
    return decoder(msg, ctx)


def decode_frame(frame: bytes, ctx: DecodeContext) -> list[Event]:
    return decode_message(parse_message(frame), ctx)
