"""What every HL7 decoder shares: the decode context and readers of common fields (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from connectors.hl7.dtm import DtmError, dtm_offset, parse_dtm
from connectors.hl7.errors import UNSUPPORTED_PROCESSING_ID, Hl7Error, bad_value, label, missing
from connectors.hl7.inventory import DeviceDirectory, normalise_eui64
from connectors.hl7.message import Delimiters, Header, Message, component, components, field_of, unescape
from hub.events import AlarmPriority, PatientBinding

_NM = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)\s*$")
PROCESSING_IDS = ("P", "T", "D")


@dataclass(frozen=True)
class DecodeContext:
    """Everything a decoder needs besides the message; time comes in, never read inside."""

    directory: DeviceDirectory
    received_time: float
    connector: str = "mllp"
    assume_offset_min: int = 0
    bind_patient_from_pid: bool = False
    default_alarm_priority: AlarmPriority = AlarmPriority.MEDIUM


def default_offset(header: Header, ctx: DecodeContext) -> int:
    """Offset for times without one: MSH-7's own offset, else the rules' assume_utc_offset."""
    offset = dtm_offset(header.get(7))
    return ctx.assume_offset_min if offset is None else offset


def read_time(value: str, segment: str, position: int, sequence: int, offset: int, comp: str = "^") -> float:
    text = value.split(comp, 1)[0] if comp in value else value  # TS (v2.4) may carry ^precision
    try:
        return parse_dtm(text, offset)
    except DtmError as exc:
        raise bad_value(segment, position, f"{label(segment, position, sequence)}: {exc}", sequence) from None


def message_time(header: Header, offset: int) -> float:
    if not header.get(7):
        raise missing("MSH", 7, "date/time of message")
    return read_time(header.get(7), "MSH", 7, 1, offset)


def check_processing_id(header: Header) -> str:
    pid = header.component(11, 1)
    if not pid:
        raise missing("MSH", 11, "processing id", hint="P (production), T (training) or D (debugging)")
    if pid not in PROCESSING_IDS:
        raise Hl7Error(
            f"MSH-11 processing id '{pid}' is not supported (supported: P, T, D)",
            code=UNSUPPORTED_PROCESSING_ID,
            ack_code="AR",
            segment="MSH",
            position=11,
        )
    return pid


def read_number(value: str, segment: str, position: int, sequence: int) -> float:
    if not _NM.match(value):
        where = label(segment, position, sequence)
        raise bad_value(segment, position, f"{where} value '{value[:40]}' is not an NM number", sequence)
    return float(value)


@lru_cache(maxsize=4096)
def coded(value: str, delims: Delimiters) -> tuple[str, str, str]:
    """CWE/CE -> (identifier, text, coding system); text falls back to original text (CWE-9)."""
    parts = components(value, delims)
    code = parts[0].strip() if parts else ""
    text = parts[1].strip() if len(parts) > 1 else ""
    system = parts[2].strip() if len(parts) > 2 else ""
    if not text and len(parts) > 8:
        text = unescape(parts[8], delims)
    if not system and (text.startswith("MDC_") or code.startswith("MDC_")):
        system = "MDC"
    return code, text, system


@lru_cache(maxsize=4096)
def equipment_of(value: str, delims: Delimiters) -> tuple[str | None, str | None]:
    """EI (OBX-18, MSH-3 as HD) -> (name, EUI-64). EUI-64 from the universal id when typed EUI-64,
    or from the name when that is 16 hex digits."""
    if not value:
        return None, None
    parts = components(value, delims)
    name = parts[0].strip() or None
    eui = None
    for i in range(1, len(parts) - 1):
        if parts[i + 1].strip().upper() == "EUI-64":
            eui = normalise_eui64(parts[i])
    if eui is None:
        eui = normalise_eui64(name)
    return name, eui


@lru_cache(maxsize=4096)
def location_of(value: str, delims: Delimiters) -> str | None:
    """PV1-3 / PV1-6 (PL) -> hub location: point of care, room and bed, the non-empty ones joined
    with '-' ('ICU1^^BED01' -> 'ICU1-BED01', '3 West ICU^3002^1' -> '3 West ICU-3002-1')."""
    if not value:
        return None
    parts = [unescape(p.strip(), delims) for p in components(value, delims)[:3]]
    joined = "-".join(p for p in parts if p)
    return joined or None


def patient_id_of(pid: list[str] | None, delims: Delimiters) -> str | None:
    """PID-3: the first identifier (CX-1), preferring one typed MR (CX-5)."""
    value = field_of(pid, 3)
    if not value:
        return None
    first = None
    for rep in value.split(delims.repetition):
        parts = rep.split(delims.component)
        ident = parts[0].strip()
        if not ident:
            continue
        first = first or ident
        if len(parts) > 4 and parts[4].strip() == "MR":
            return ident
    return first


def patient_name_of(pid: list[str] | None, delims: Delimiters) -> str | None:
    """PID-5 as 'family^given' (HL7 XPN order, empty components dropped at the end)."""
    parts = components(field_of(pid, 5), delims)[:3]
    parts = [unescape(p, delims) for p in parts if p != '""']
    while parts and not parts[-1]:
        parts.pop()
    return delims.component.join(parts) or None if parts else None


def encounter_of(pv1: list[str] | None, delims: Delimiters) -> str | None:
    return component(field_of(pv1, 19), 1, delims).strip() or None


def patient_binding(msg: Message) -> PatientBinding | None:
    pid, pv1 = msg.first("PID"), msg.first("PV1")
    patient_id = patient_id_of(pid, msg.delims)
    if patient_id is None:
        return None
    return PatientBinding(
        patient_id=patient_id,
        encounter_id=encounter_of(pv1, msg.delims),
        location=location_of(field_of(pv1, 3), msg.delims),
        patient_name=patient_name_of(pid, msg.delims),
    )
