"""SCP-ECG (EN 1064 / ISO 11073-91064) reader.

Reads the pointer section (0), patient/acquisition tags (1), Huffman tables (2, the
default table 19999 or tables in the file), lead definitions (3) and rhythm data (6):
Huffman decoding, then first- or second-difference decoding, then amplitude = value x AVM (nV).
Not supported (a clear error says so): reference-beat subtraction (section 3 flag bit 0,
residual + section 5 beats), bimodal compression, and leads of different lengths.
Writing SCP-ECG is not offered: write DICOM, aECG or EDF instead.
"""

from __future__ import annotations

import struct
from datetime import date, datetime, time
from pathlib import Path

import numpy as np

from connectors.ecg.exceptions import EcgFormatError
from connectors.ecg.model import Device, EcgRecord, Lead, Patient

SCP_MAGIC = b"SCPECG"
DEFAULT_HUFFMAN_TABLE = 19999
LEAD_NAMES = {
    1: "I", 2: "II", 3: "V1", 4: "V2", 5: "V3", 6: "V4", 7: "V5", 8: "V6", 9: "V7", 10: "V2R", 11: "V3R",
    12: "V4R", 13: "V5R", 14: "V6R", 15: "V7R", 16: "X", 17: "Y", 18: "Z", 19: "CC5", 20: "CM5", 21: "LA",
    22: "RA", 23: "LL", 33: "V8", 34: "V9", 35: "V8R", 36: "V9R", 61: "III", 62: "aVR", 63: "aVL", 64: "aVF",
    65: "-aVR", 66: "V10", 67: "V11", 68: "V12",
}
# (prefix bits, total bits, mode, value, code) of the standard's default table.
_DEFAULT_CODES = [(1, 1, 1, 0, 0b0)] + [
    entry
    for magnitude, bits in zip(range(1, 9), range(3, 11))
    for entry in (
        (bits, bits, 1, magnitude, ((1 << (bits - 2)) - 1) << 2 if bits > 3 else 0b100),
        (bits, bits, 1, -magnitude, (((1 << (bits - 2)) - 1) << 2 | 1) if bits > 3 else 0b101),
    )
] + [(10, 18, 1, 0, 0b1111111110), (10, 26, 1, 0, 0b1111111111)]
_SEX = {1: "M", 2: "F", 0: "", 9: "U"}
_AGE_UNIT_YEARS = {1: 1.0, 2: 1 / 12, 3: 7 / 365.25, 4: 1 / 365.25, 5: 1 / 8766}


def read_scp(path: str | Path) -> EcgRecord:
    data = Path(path).read_bytes()
    if len(data) < 22 or data[16:22] != SCP_MAGIC:
        raise EcgFormatError(path, "not an SCP-ECG file (no 'SCPECG' in the section 0 header at byte 16)")
    sections = _read_pointers(path, data)
    if 3 not in sections or 6 not in sections:
        raise EcgFormatError(path, f"SCP-ECG without lead definitions (3) or rhythm data (6); sections: {sorted(sections)}")
    leads_def, flags = _read_leads(sections[3])
    if flags & 0x01:
        raise EcgFormatError(path, "reference-beat subtraction (section 3 flag bit 0) is not supported", field="section3")
    tables = _read_huffman(path, sections[2]) if 2 in sections else None
    leads, rate = _read_rhythm(path, sections[6], leads_def, tables)
    patient, device, start = _read_tags(sections.get(1, b""))
    return EcgRecord(leads=leads, sample_rate=rate, start_time=start, patient=patient, device=device, source_format="scp")


def _read_pointers(path, data: bytes) -> dict[int, bytes]:
    _, _, length = struct.unpack_from("<HHI", data, 6)
    sections: dict[int, bytes] = {}
    pos, end = 22, 6 + length
    while pos + 10 <= end:
        sid, size, index = struct.unpack_from("<HII", data, pos)
        pos += 10
        if size and index:
            start = index - 1
            if start + size > len(data):
                raise EcgFormatError(path, f"section {sid} ({size} bytes at {start}) runs past the end of the file")
            sections[sid] = data[start + 16 : start + size]  # body after the 16-byte section header
    return sections


def _read_leads(body: bytes) -> tuple[list[tuple[int, int, int]], int]:
    count, flags = body[0], body[1]
    leads = [struct.unpack_from("<IIB", body, 2 + 9 * i) for i in range(count)]
    return leads, flags


def _read_huffman(path, body: bytes) -> list[dict[tuple[int, int], tuple[int, int, int]]]:
    (n_tables,) = struct.unpack_from("<H", body, 0)
    if n_tables == DEFAULT_HUFFMAN_TABLE:
        return [_table(_DEFAULT_CODES)]
    tables, pos = [], 2
    for _ in range(n_tables):
        (n_codes,) = struct.unpack_from("<H", body, pos)
        pos += 2
        codes = []
        for _ in range(n_codes):
            prefix, total, mode, value, code = struct.unpack_from("<BBBhI", body, pos)
            pos += 9
            codes.append((prefix, total, mode, value, int(f"{code:032b}"[::-1][:prefix], 2)))  # stored bit-reversed
        tables.append(_table(codes))
    if not tables:
        raise EcgFormatError(path, "section 2 declares no Huffman tables", field="section2")
    return tables


def _table(codes) -> dict[tuple[int, int], tuple[int, int, int]]:
    return {(prefix, code): (total - prefix, mode, value) for prefix, total, mode, value, code in codes}


def _read_rhythm(path, body: bytes, leads_def, tables) -> tuple[tuple[Lead, ...], float]:
    avm_nv, interval_us, difference, bimodal = struct.unpack_from("<HHBB", body, 0)
    if bimodal:
        raise EcgFormatError(path, "bimodal compression is not supported", field="section6")
    if interval_us == 0:
        raise EcgFormatError(path, "sample time interval is 0", field="section6")
    sizes = struct.unpack_from(f"<{len(leads_def)}H", body, 6)
    pos = 6 + 2 * len(leads_def)
    leads = []
    for (start, end, lead_id), size in zip(leads_def, sizes):
        chunk = body[pos : pos + size]
        pos += size
        expected = end - start + 1
        values = _huffman_decode(chunk, tables, expected) if tables else np.frombuffer(chunk[: 2 * expected], "<i2")
        values = _undifference(np.asarray(values, dtype=np.int64), difference)
        name = LEAD_NAMES.get(lead_id, f"lead{lead_id}")
        leads.append(Lead(name, values.astype(np.int32), avm_nv / 1000.0, 0.0, "uV"))
    lengths = {len(lead.digital) for lead in leads}
    if len(lengths) > 1:
        raise EcgFormatError(path, f"leads hold different sample counts {sorted(lengths)}", field="section6")
    return tuple(leads), 1e6 / interval_us


def _huffman_decode(chunk: bytes, tables, expected: int) -> list[int]:
    bits = np.unpackbits(np.frombuffer(chunk, dtype=np.uint8)).tolist()
    table = tables[0]
    out: list[int] = []
    pos, n = 0, len(bits)
    while len(out) < expected and pos < n:
        code = length = 0
        while True:
            if pos >= n:
                return out
            code = (code << 1) | bits[pos]
            pos += 1
            length += 1
            entry = table.get((length, code))
            if entry is not None:
                break
            if length > 32:
                raise ValueError(f"invalid Huffman code at bit {pos}")
        extra, mode, value = entry
        if mode == 0:  # switch table
            table = tables[value - 1]
            continue
        if extra:
            raw = 0
            for b in bits[pos : pos + extra]:
                raw = (raw << 1) | b
            pos += extra
            value = raw - (1 << extra) if raw & (1 << (extra - 1)) else raw
        out.append(value)
    return out


def _undifference(values: np.ndarray, order: int) -> np.ndarray:
    if order == 0 or len(values) <= order:
        return values
    out = values.copy()
    if order == 1:
        return np.cumsum(values)
    for i in range(2, len(out)):  # x[n] = d[n] + 2 x[n-1] - x[n-2]
        out[i] = out[i] + 2 * out[i - 1] - out[i - 2]
    return out


def _read_tags(body: bytes) -> tuple[Patient, Device, datetime | None]:
    tags: dict[int, bytes] = {}
    pos = 0
    while pos + 3 <= len(body):
        tag, size = body[pos], struct.unpack_from("<H", body, pos + 1)[0]
        if tag == 255:
            break
        tags[tag] = body[pos + 3 : pos + 3 + size]
        pos += 3 + size
    text = {k: v.split(b"\x00", 1)[0].decode("latin-1").strip() for k, v in tags.items()}
    age = None
    if 4 in tags and len(tags[4]) >= 3:
        value, unit = struct.unpack_from("<HB", tags[4], 0)
        age = value * _AGE_UNIT_YEARS.get(unit, 1.0) if value else None
    birth = _date(tags.get(5))
    name = " ".join(x for x in (text.get(1, ""), text.get(0, "")) if x)
    patient = Patient(id=text.get(2, ""), name=name, sex=_SEX.get(tags[8][0], "") if tags.get(8) else "",
                      birth_date=birth, age_years=age)
    device = _device(tags.get(14, b""))
    start = None
    day, clock = _date(tags.get(25)), tags.get(26)
    if day and clock and len(clock) >= 3:
        start = datetime.combine(day, time(clock[0], clock[1], clock[2]))
    return patient, device, start


def _date(raw: bytes | None) -> date | None:
    if not raw or len(raw) < 4:
        return None
    year, month, day = struct.unpack_from("<HBB", raw, 0)
    try:
        return date(year, month, day) if year else None
    except ValueError:
        return None


def _device(raw: bytes) -> Device:
    """Tag 14: fixed part (model at bytes 8-13), then strings: program revision, serial, software, SCP
    implementation, manufacturer."""
    if len(raw) < 36:
        return Device()
    model = raw[8:14].split(b"\x00", 1)[0].decode("latin-1").strip()
    strings = [s.decode("latin-1").strip() for s in raw[36 + raw[35] :].split(b"\x00")]
    strings += [""] * 5
    return Device(manufacturer=strings[3], model=model, serial=strings[0], software=strings[1])
