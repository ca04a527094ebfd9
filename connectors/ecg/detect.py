"""Format detection by content (never by extension alone).

Looks at the first bytes: DICOM (`DICM` at 128, or an implicit-VR group 0008 start),
SCP-ECG (`SCPECG` in the section 0 header), EDF/EDF+ (`0       ` header with numeric
fields), XML root element (HL7 aECG, ecgAware, Philips Sierra), a WFDB header (record
line `name nsig [fs [nsamp]]`, also when given the .dat of a record with its .hea next to
it) and CSV (a header row of names then numeric rows).
"""

from __future__ import annotations

import re
from pathlib import Path

from lxml import etree

from connectors.ecg.exceptions import EcgFormatError

FORMATS = ("wfdb", "edf", "csv", "aecg", "ecgaware", "scp", "dicom", "philips")
_XML_ROOTS = {
    "{urn:hl7-org:v3}AnnotatedECG": "aecg",
    "{urn:devsync:ecgaware:1}ecgAware": "ecgaware",
    "{http://www3.medical.philips.com}restingecgdata": "philips",
}
_WFDB_RECORD_LINE = re.compile(r"^[\w\-/]+(/\d+)?\s+\d+(\s+[\d.eE+\-/():]+)*\s*$")


def detect_format(path: str | Path) -> str:
    """Return one of FORMATS, or raise EcgFormatError naming what the file looked like."""
    p = Path(path)
    if not p.exists() and not p.suffix and p.with_suffix(".hea").exists():
        return "wfdb" if _sniff_wfdb(p, b"") else _unknown(p, b"")
    if not p.exists():
        raise EcgFormatError(p, "no such file")
    if p.is_dir():
        raise EcgFormatError(p, "is a directory")
    head = p.read_bytes()[:4096] if p.stat().st_size else b""
    if not head:
        raise EcgFormatError(p, "file is empty")
    found = _sniff_binary(head) or _sniff_xml(p, head) or _sniff_wfdb(p, head) or _sniff_csv(head)
    return found or _unknown(p, head)


def _unknown(p: Path, head: bytes) -> str:
    raise EcgFormatError(p, f"unknown ECG format (starts with {head[:16]!r}); known: {', '.join(FORMATS)}")


def _sniff_binary(head: bytes) -> str | None:
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    if head[:2] == b"\x08\x00" and head[2:4] in (b"\x05\x00", b"\x08\x00", b"\x16\x00", b"\x18\x00", b"\x00\x00"):
        return "dicom"  # implicit VR little endian without preamble
    if len(head) >= 22 and head[16:22] == b"SCPECG":
        return "scp"
    if len(head) >= 256 and head[:8] == b"0       " and head[184:192].strip().isdigit() and head[252:256].strip().isdigit():
        return "edf"
    return None


def _sniff_xml(path: Path, head: bytes) -> str | None:
    text = head.lstrip(b"\xef\xbb\xbf")
    if not (text.lstrip().startswith(b"<") or text[:2] in (b"\xff\xfe", b"\xfe\xff")):
        return None
    try:
        for _, element in etree.iterparse(str(path), events=("start",), resolve_entities=False, huge_tree=True):
            return _XML_ROOTS.get(element.tag)
    except etree.XMLSyntaxError:
        return None
    return None


def _sniff_wfdb(path: Path, head: bytes) -> str | None:
    """A WFDB header itself, or a signal/annotation file whose record header (same stem) names it."""
    if _is_wfdb_header(head):
        return "wfdb"
    header = path.with_suffix(".hea")
    if header == path or not header.exists():
        return None
    text = header.read_bytes()[:65536]
    if not _is_wfdb_header(text):
        return None
    if not path.exists() or path.suffix.lower() == ".atr":
        return "wfdb"
    signal_files = {line.split()[0] for line in text.decode("ascii", "replace").splitlines()[1:] if line.strip() and not line.startswith("#")}
    return "wfdb" if path.name in signal_files else None


def _is_wfdb_header(head: bytes) -> bool:
    try:
        lines = [ln.strip() for ln in head.decode("ascii").splitlines()]
    except UnicodeDecodeError:
        return False
    record_lines = [ln for ln in lines if ln and not ln.startswith("#")]
    if not record_lines or not _WFDB_RECORD_LINE.match(record_lines[0]):
        return False
    return len(record_lines) >= 1 + int(record_lines[0].split()[1])


def _sniff_csv(head: bytes) -> str | None:
    try:
        lines = [ln for ln in head.decode("utf-8").splitlines() if ln.strip() and not ln.startswith("#")]
    except UnicodeDecodeError:
        return None
    if len(lines) < 2 or "," not in lines[0]:
        return None
    cells = lines[1].split(",")
    numeric = sum(bool(re.fullmatch(r"\s*-?[\d.]+([eE][-+]?\d+)?\s*", c)) for c in cells)
    return "csv" if numeric >= len(cells) - 1 and len(cells) == len(lines[0].split(",")) else None
