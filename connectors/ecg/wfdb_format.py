"""MIT/WFDB records (.hea header + .dat signals + optional .atr annotations) via the `wfdb` package.

Carries: leads, rate, start date/time, integer samples with gain/baseline/units,
annotations (.atr). Patient and device have no header fields in WFDB; they travel
as `key: value` header comments (the PTB convention: `age: 81`, `sex: female`),
and the MIT-BIH first-comment convention (`69 M ...`) is read too.
Annotation end points and leads of non-beat codes do not survive (WFDB stores
points; foreign codes become comment annotations `"` with the code as aux note).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path

import numpy as np
import wfdb

from connectors.ecg.exceptions import EcgFormatError
from connectors.ecg.model import Annotation, Device, EcgRecord, Lead, Patient, canonical_lead_name, fit_int16

ANNOTATION_EXTENSION = "atr"
_COMMENT_KEYS = {
    "patient_id": "patient_id",
    "patient_name": "patient_name",
    "age": "age",
    "sex": "sex",
    "birth_date": "birth_date",
    "device_manufacturer": "manufacturer",
    "device_model": "model",
    "device_serial": "serial",
    "device_software": "software",
}


def record_base(path: str | Path) -> Path:
    """`dir/100.hea`, `dir/100.dat` or `dir/100` -> `dir/100` (what wfdb calls the record name)."""
    p = Path(path)
    return p.with_suffix("") if p.suffix.lower() in (".hea", ".dat", ".atr", ".xyz") else p


def read_wfdb(path: str | Path, *, annotation_extension: str = ANNOTATION_EXTENSION) -> EcgRecord:
    base = record_base(path)
    if not base.with_suffix(".hea").exists():
        raise EcgFormatError(path, f"no WFDB header {base.with_suffix('.hea').name} next to it")
    try:
        rec = wfdb.rdrecord(str(base), physical=False, return_res=64)
    except Exception as exc:  # wfdb raises bare ValueError/IndexError on bad headers
        raise EcgFormatError(path, f"not a readable WFDB record: {exc}") from exc
    if isinstance(rec.fs, (list, tuple)) or rec.d_signal is None:
        raise EcgFormatError(path, "multi-frequency WFDB records are not supported (one rate per record)")
    leads = tuple(
        Lead(
            name=canonical_lead_name(rec.sig_name[i]),
            digital=rec.d_signal[:, i].astype(np.int32),
            scale=1.0 / float(rec.adc_gain[i] or 200.0),
            baseline=float(rec.baseline[i]),
            unit=rec.units[i] or "mV",
        )
        for i in range(rec.n_sig)
    )
    patient, device = _parse_comments(rec.comments or [])
    start = None
    if rec.base_date is not None and rec.base_time is not None:
        start = datetime.combine(rec.base_date, rec.base_time)
    return EcgRecord(
        leads=leads,
        sample_rate=float(rec.fs),
        start_time=start,
        patient=patient,
        device=device,
        annotations=_read_annotations(base, annotation_extension, rec.sig_name),
        source_format="wfdb",
    )


def _read_annotations(base: Path, extension: str, names: list[str]) -> tuple[Annotation, ...]:
    if not base.with_suffix("." + extension).exists():
        return ()
    ann = wfdb.rdann(str(base), extension)
    notes = ann.aux_note or [""] * len(ann.sample)
    chans = ann.chan if ann.chan is not None else [0] * len(ann.sample)
    out = []
    for sample, symbol, note, chan in zip(ann.sample, ann.symbol, notes, chans):
        note = (note or "").rstrip("\x00")
        code, text = (note.split(" ", 1) + [""])[:2] if symbol == '"' and note else (symbol, note)
        lead = canonical_lead_name(names[int(chan)]) if 0 <= int(chan) < len(names) else None
        out.append(Annotation(sample=int(sample), code=code, text=text, lead=lead))
    return tuple(out)


def _parse_comments(comments: list[str]) -> tuple[Patient, Device]:
    fields: dict[str, str] = {}
    for line in comments:
        m = re.match(r"^\s*([A-Za-z_ ]+?)\s*:\s*(.*)$", line)
        if m and m.group(1).lower().replace(" ", "_") in _COMMENT_KEYS:
            fields[_COMMENT_KEYS[m.group(1).lower().replace(" ", "_")]] = m.group(2).strip()
    mit = next((re.match(r"^\s*(\d+)\s+([MF])\b", c) for c in comments if re.match(r"^\s*\d+\s+[MF]\b", c)), None)
    if mit and "age" not in fields:
        fields["age"], fields["sex"] = mit.group(1), mit.group(2)
    age = fields.get("age", "")
    sex = fields.get("sex", "")[:1].upper()
    birth = None
    if fields.get("birth_date"):
        try:
            birth = date.fromisoformat(fields["birth_date"])
        except ValueError:
            birth = None
    patient = Patient(
        id=fields.get("patient_id", ""),
        name=fields.get("patient_name", ""),
        sex=sex if sex in ("M", "F", "U") else "",
        birth_date=birth,
        age_years=float(age) if re.fullmatch(r"\d+(\.\d+)?", age) else None,
    )
    device = Device(**{k: fields.get(k, "") for k in ("manufacturer", "model", "serial", "software")})
    return patient, device


def _build_comments(record: EcgRecord) -> list[str]:
    p, d = record.patient, record.device
    pairs = [
        ("patient_id", p.id),
        ("patient_name", p.name),
        ("age", "" if p.age_years is None else f"{p.age_years:g}"),
        ("sex", p.sex),
        ("birth_date", p.birth_date.isoformat() if p.birth_date else ""),
        ("device_manufacturer", d.manufacturer),
        ("device_model", d.model),
        ("device_serial", d.serial),
        ("device_software", d.software),
    ]
    return [f"{k}: {v}" for k, v in pairs if v]


def write_wfdb(record: EcgRecord, path: str | Path, *, annotation_extension: str = ANNOTATION_EXTENSION) -> Path:
    """Write `<base>.hea`, `<base>.dat` (format 16) and `<base>.atr` when there are annotations."""
    base = record_base(path)
    base.parent.mkdir(parents=True, exist_ok=True)
    leads = [fit_int16(lead, integer_baseline=True) for lead in record.leads]
    names = [lead.name or f"ch{i}" for i, lead in enumerate(leads)]
    start = record.start_time
    wfdb.wrsamp(
        base.name,
        fs=record.sample_rate,
        units=[lead.unit for lead in leads],
        sig_name=names,
        d_signal=np.column_stack([lead.digital for lead in leads]).astype(np.int64),
        fmt=["16"] * len(leads),
        adc_gain=[1.0 / lead.scale for lead in leads],
        baseline=[int(lead.baseline) for lead in leads],
        comments=_build_comments(record),
        base_date=start.date() if start else None,
        base_time=start.time() if start else None,
        write_dir=str(base.parent),
    )
    if record.annotations:
        _write_annotations(base, annotation_extension, record)
    return base.with_suffix(".hea")


def _write_annotations(base: Path, extension: str, record: EcgRecord) -> None:
    valid = set(wfdb.io.annotation.ann_label_table["symbol"])
    anns = sorted((a for a in record.annotations if a.sample >= 0), key=lambda a: a.sample)
    symbols, notes, chans = [], [], []
    names = record.lead_names
    for a in anns:
        native = a.code in valid and a.code != '"'
        symbols.append(a.code if native else '"')
        notes.append(a.text if native else f"{a.code} {a.text}".strip())
        chans.append(names.index(a.lead) if a.lead in names else 0)
    wfdb.wrann(
        base.name,
        extension,
        sample=np.array([a.sample for a in anns], dtype=np.int64),
        symbol=symbols,
        aux_note=notes,
        chan=np.array(chans, dtype=np.int64),
        fs=record.sample_rate,
        write_dir=str(base.parent),
    )


def write_annotation_file(path: str | Path, samples: np.ndarray, fs: float, symbol: str = "N") -> Path:
    """Write detected beats as a WFDB annotation file `<base>.<ext>` (e.g. `out/100.qrs`)."""
    p = Path(path)
    base, ext = (p.with_suffix(""), p.suffix.lstrip(".")) if p.suffix else (p, "qrs")
    p.parent.mkdir(parents=True, exist_ok=True)
    samples = np.asarray(samples, dtype=np.int64)
    wfdb.wrann(base.name, ext, sample=samples, symbol=[symbol] * len(samples), fs=fs, write_dir=str(base.parent))
    return base.with_suffix("." + ext)
