"""Library validation of rendered outputs: the correctness check behind the fast renderers.

Slow on purpose (hl7apy parses at ~10 ms a message): for tests, `devsync demo` output checks and
debugging, never for the hot path. Each function raises InvalidOutputError naming what is wrong.

- validate_oru_r01: python-hl7 parse + hl7apy strict ORU^R01 v2.6 structure and datatypes, with no
  validation warnings except the known gaps of hl7apy 1.3.5's tables (KNOWN_TABLE_GAPS), OBX-5
  checked against its OBX-2 type, and the IHE PCD-01 OBX-4 hierarchy rules (TF-2 B.8).
- validate_oru_r40: hl7apy 1.3.5 has no ORU^R40 structure, so each segment is validated on its
  own (strict) and the PCD-04 facets are checked field by field (TF-2 B.8.5, E.3).
- validate_observation / validate_bundle: fhir.resources (R4B models; R4B's Observation and Bundle
  are R4's) plus the value sets fhir.resources does not enforce (status, bundle type, request).
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from hub.errors import HubError

# Values HL7 v2.6 / IHE PCD allow that hl7apy 1.3.5's copies of the tables lack.
KNOWN_TABLE_GAPS = {
    ("OBX_2", "HL70125"): {"CWE"},  # HL7 v2.6 table 0125 includes CWE; IHE PCD uses it (TF-2 E.3)
    ("OBX_8", "HL70078"): {  # IHE PCD TF-2 Tables B.8.5-6/7/8/9
        "INV", "QUES", "CAL", "TEST", "DEMO", "NAV", "NAN", "PINF", "NINF", "OTH", "PH", "PM", "PL", "PN", "SP", "ST", "SA",
    },
}
LOCATION_ONLY_ALERT = frozenset({"Missing required child PID.PID_3"})
NM_PATTERN = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
SUB_ID_PATTERN = re.compile(r"^\d+\.\d+\.\d+\.\d+$")
_WARNING = re.compile(r"^Warning: Value (.*) not in table (HL7\d+) in element OBX\.(OBX_\d+)$")


class InvalidOutputError(HubError):
    """A rendered message or resource failed library validation."""


def validate_oru_r01(text: str):
    """Validate a PCD-01 ORU^R01; returns the hl7apy message."""
    from hl7apy.consts import VALIDATION_LEVEL
    from hl7apy.parser import parse_message

    parsed = _parse_python_hl7(text)
    if str(parsed.segment("MSH")(9)) != "ORU^R01^ORU_R01":
        raise InvalidOutputError(f"MSH-9 is {parsed.segment('MSH')(9)!s}, expected ORU^R01^ORU_R01")
    try:
        message = parse_message(text, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
    except Exception as exc:  # hl7apy raises many types
        raise InvalidOutputError(f"hl7apy strict parse failed: {type(exc).__name__}: {exc}") from exc
    _run_validator(message)
    obx = [s for s in parsed if str(s[0]) == "OBX"]
    for segment in obx:
        _check_obx5(segment)
    _check_hierarchy(obx)
    return message


def validate_oru_r40(text: str):
    """Validate a PCD-04 ORU^R40 segment by segment; returns the python-hl7 message."""
    from hl7apy.consts import VALIDATION_LEVEL
    from hl7apy.parser import parse_segment

    parsed = _parse_python_hl7(text)
    names = [str(s[0]) for s in parsed]
    if names[:4] != ["MSH", "PID", "PV1", "OBR"] or set(names[4:]) != {"OBX"}:
        raise InvalidOutputError(f"segments {names}: expected MSH PID PV1 OBR OBX+")
    for raw in text.split("\r"):
        try:
            segment = parse_segment(raw, version="2.6", validation_level=VALIDATION_LEVEL.STRICT)
        except Exception as exc:
            raise InvalidOutputError(f"hl7apy strict parse of {raw[:3]} failed: {type(exc).__name__}: {exc}") from exc
        # IHE PCD TF-2 B.5.1: PID-3 is optional in PCD-04 (a location-only alert identifies no patient).
        _run_validator(segment, LOCATION_ONLY_ALERT if raw.startswith("PID|||||") else frozenset())
    for segment in (s for s in parsed if str(s[0]) == "OBX"):
        _check_obx5(segment)
        if str(segment(11)) != "F":
            raise InvalidOutputError(f"OBX-11 must be F in PCD-04 (TF-2 B.8.6), got {segment(11)!s}")
    return parsed


def validate_observation(resource: dict):
    """Validate a FHIR R4 Observation dict; returns the fhir.resources model."""
    from fhir.resources.R4B.observation import Observation

    if resource.get("status") not in {"registered", "preliminary", "final", "amended", "corrected",
                                      "cancelled", "entered-in-error", "unknown"}:
        raise InvalidOutputError(f"Observation.status {resource.get('status')!r} is not in the R4 value set")
    try:
        return Observation.model_validate(resource)
    except Exception as exc:
        raise InvalidOutputError(f"fhir.resources rejected the Observation: {exc}") from exc


def validate_bundle(bundle: dict):
    """Validate a FHIR R4 transaction Bundle of Observations; returns the fhir.resources model."""
    from fhir.resources.R4B.bundle import Bundle

    if bundle.get("type") != "transaction":
        raise InvalidOutputError(f"Bundle.type {bundle.get('type')!r}, expected transaction")
    for index, entry in enumerate(bundle.get("entry", [])):
        request = entry.get("request", {})
        if request.get("method") != "POST" or request.get("url") != "Observation":
            raise InvalidOutputError(f"entry[{index}].request must be POST Observation, got {request}")
        if not str(entry.get("fullUrl", "")).startswith("urn:uuid:"):
            raise InvalidOutputError(f"entry[{index}].fullUrl must be a urn:uuid")
        validate_observation(entry["resource"])
    try:
        return Bundle.model_validate(bundle)
    except Exception as exc:
        raise InvalidOutputError(f"fhir.resources rejected the Bundle: {exc}") from exc


def _parse_python_hl7(text: str):
    import hl7

    if "\n" in text or text.endswith("\r"):
        raise InvalidOutputError("segments must be separated by CR only, without a trailing CR")
    try:
        return hl7.parse(text)
    except Exception as exc:
        raise InvalidOutputError(f"python-hl7 parse failed: {type(exc).__name__}: {exc}") from exc


def _run_validator(element, allowed_errors: frozenset[str] = frozenset()) -> None:
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "report.txt"
        failure = None
        try:
            element.validate(report_file=str(report))
        except Exception as exc:  # noqa: BLE001 - hl7apy raises many types; the report file says what failed
            failure = exc
        lines = report.read_text().splitlines() if report.exists() else []
    errors = [line for line in lines if line.startswith("Error: ") and line[7:] not in allowed_errors]
    if failure is not None and (errors or not lines):
        raise InvalidOutputError(f"hl7apy validation failed: {type(failure).__name__}: {failure}") from failure
    for line in lines:
        if line.startswith("Error: "):
            continue
        match = _WARNING.match(line)
        if match and match.group(1) in KNOWN_TABLE_GAPS.get((match.group(3), match.group(2)), ()):
            continue
        raise InvalidOutputError(f"hl7apy validation: {line}")


def _check_obx5(segment) -> None:
    value_type, value = str(segment(2)), str(segment(5))
    where = f"OBX {segment(1)!s} ({segment(3)!s})"
    if not value_type:
        if value:
            raise InvalidOutputError(f"{where}: OBX-5 has a value but OBX-2 is empty")
        return
    if not value:
        return
    if value_type == "NM":
        if not NM_PATTERN.match(value) or len(value) > 16:
            raise InvalidOutputError(f"{where}: OBX-5 {value!r} is not an HL7 NM (max 16 chars, no exponent)")
    elif value_type in ("ST", "TX"):
        if any(c in value for c in "^&~"):
            raise InvalidOutputError(f"{where}: {value_type} value has unescaped component/repetition delimiters")
        if value_type == "ST" and len(value) > 199:
            raise InvalidOutputError(f"{where}: ST value longer than 199 characters")
    elif value_type == "CWE":
        components = value.split("^")
        if len(components) > 9 or "~" in value:
            raise InvalidOutputError(f"{where}: CWE value {value!r} has more than 9 components or repeats")
        if components[0] and (len(components) < 3 or not components[2]):
            raise InvalidOutputError(f"{where}: CWE identifier {components[0]!r} without a coding system (CWE-3)")
    else:
        raise InvalidOutputError(f"{where}: unexpected OBX-2 value type {value_type}")


def _check_hierarchy(obx_segments) -> None:
    """IHE PCD TF-2 B.8.3/B.8.4: distinct dotted OBX-4s, dictionary order, device-related rows first."""
    seen: list[tuple[int, ...]] = []
    for segment in obx_segments:
        sub_id = str(segment(4))
        if not SUB_ID_PATTERN.match(sub_id):
            raise InvalidOutputError(f"OBX {segment(1)!s}: OBX-4 {sub_id!r} is not <MDS>.<VMD>.<CHAN>.<METRIC>")
        key = tuple(int(p) for p in sub_id.split("."))
        if seen and key <= seen[-1]:
            raise InvalidOutputError(f"OBX {segment(1)!s}: OBX-4 {sub_id} is not after {seen[-1]} (dictionary order)")
        seen.append(key)
        device_related = key[3] == 0
        if device_related and (str(segment(11)) != "X" or str(segment(5))):
            raise InvalidOutputError(f"OBX {segment(1)!s}: device-related row must have OBX-11 X and no OBX-5")
        mds, vmd, chan, _ = key
        parents = [((mds, 0, 0, 0), "MDS")]
        if vmd:
            parents.append(((mds, vmd, 0, 0), "VMD"))
        if chan:
            parents.append(((mds, vmd, chan, 0), "channel"))
        for parent, level in parents:
            if parent != key and parent not in seen:
                raise InvalidOutputError(f"OBX {segment(1)!s}: OBX-4 {sub_id} has no {level} row before it")
