"""HL7 v2.6 header segments shared by PCD-01 (ORU^R01) and PCD-04 (ORU^R40): MSH, PID, PV1.

Pure string building; every free-text value goes through escape_hl7.
"""

from __future__ import annotations

from hub.errors import HubError, RuleError
from hub.events import PatientBinding
from hub.render.context import RenderContext
from hub.render.escape import escape_hl7, hl7_time

PCD01_PROFILE = "IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO"
PCD04_PROFILE = "IHE_PCD_ACM_001^IHE PCD^1.3.6.1.4.1.19376.1.6.4.4.1^ISO"
CHARSET = "UNICODE UTF-8"
HD_MAX = 20  # HL7 v2.6 IS length: namespace ids (MSH-3/4/5/6, EI-2) and PL-1


def build_msh(ctx: RenderContext, *, message_type: str, profile: str, control_id: str, message_time: float) -> str:
    """MSH for IHE PCD: no MSH-13 (sequence number), MSH-15 AL, MSH-16 NE, MSH-18 UTF-8, MSH-21 profile."""
    if not control_id or not control_id.strip():
        raise HubError("render: control_id must not be blank (it is MSH-10, matched by MSA-2 in the ACK)")
    return (
        f"MSH|^~\\&|{ctx.hl7_sending_app}|{ctx.hl7_header_tail}|{hl7_time(message_time)}||{message_type}|"
        f"{escape_hl7(control_id)}|P|2.6|||AL|NE||{CHARSET}|||{profile}"
    )


def format_name(name: str | None) -> str:
    """PID-5 (XPN). Accepts `Family^Given^Middle` (as ADT sends it), `Family, Given Middle`, or a bare
    family name; an unknown name is reported as name type U with empty components (IHE PCD TF-2 B.5)."""
    if not name or not name.strip():
        return "^^^^^^U"
    if "^" in name:
        parts = [p.strip() for p in name.split("^")[:3]]
    elif "," in name:
        family, _, given = name.partition(",")
        given_parts = given.split(None, 1)
        parts = [family.strip(), *given_parts]
    else:
        parts = [name.strip()]
    parts += [""] * (3 - len(parts))
    family, given, middle = (escape_hl7(p) for p in parts[:3])
    return f"{family}^{given}^{middle}^^^^L"


def build_pid(ctx: RenderContext, patient: PatientBinding | None) -> str:
    """PID-3 `id^^^authority^MR`, PID-5 name. Without a binding (PCD-04 location-based alert) both are empty."""
    if patient is None:
        return "PID|||||^^^^^^U"
    if not patient.patient_id.strip():
        raise RuleError("render: the patient binding has a blank patient id (PID-3 is required)")
    authority = escape_hl7(ctx.patient_id_authority) if ctx.patient_id_authority else ""
    pid3 = f"{escape_hl7(patient.patient_id)}^^^{authority}^{ctx.patient_id_type}"
    return f"PID|||{pid3}||{format_name(patient.patient_name)}"


def format_location(location: str | None) -> str:
    """PV1-3 (PL): the location as point of care (PL-1, an IS of at most 20 characters), or, when longer,
    as location description (PL-9)."""
    if not location:
        return ""
    text = escape_hl7(location)
    return text if len(text) <= HD_MAX else "^" * 8 + text


def build_pv1(location: str | None, encounter_id: str | None) -> str:
    """PV1-2 I (inpatient), PV1-3 location, PV1-19 visit number when known."""
    pv1 = f"PV1||I|{format_location(location)}"
    if encounter_id:
        pv1 += "|" * 16 + escape_hl7(encounter_id)
    return pv1
