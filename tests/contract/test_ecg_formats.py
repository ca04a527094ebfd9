"""Contract: every real ECG sample file in ../shared/data is read, written in every writable
format, read back, and compared with what the format can carry; the same ECG stored in
several formats reads the same through each reader."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from lxml import etree

from connectors.ecg import EcgFormatError, EcgWriteError, detect_format, read_ecg, write_ecg
from connectors.ecg.aecg import read_aecg
from connectors.ecg.dicom_ecg import read_dicom
from connectors.ecg.ecgaware import load_schema
from connectors.ecg.edf import read_edf
from connectors.ecg.model import UNIT_TO_UV, EcgRecord
from connectors.ecg.scp import read_scp

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
AECG_XSD = DATA / "aecg" / "schema-2003-12" / "schema" / "PORT_MT020001.xsd"

SOURCES = {
    "wfdb-100": ("wfdb/100.hea", {}),
    "wfdb-s0010_re": ("wfdb/s0010_re.hea", {}),
    "wfdb-v102s": ("wfdb/v102s.hea", {}),
    "edf-contec": ("edf/contec_ecg90a_0000050.edf", {}),
    "dicom-ecgtoolkit": ("dicom/ecgtoolkit_Example.dcm", {}),
    "dicom-pydicom": ("dicom/pydicom_waveform_ecg.dcm", {}),
    "scp-ecgtoolkit": ("scp/ecgtoolkit_Example.scp", {}),
    "scp-contec": ("scp/contec_ecg90a_0000050.scp", {}),
    "aecg-hl7-example": ("aecg/hl7_example_aECG.xml", {}),
    "aecg-fda-minimum": ("aecg/fda_minimum_aecg.xml", {}),
    "csv-12lead": ("csv/ecg_plot_12lead_500hz.csv", {"sample_rate": 500}),
    "philips-1.03": ("ecg-xml-vendor/philips_sierra_1_03_129DYPRG.xml", {}),
    "philips-1.04": ("ecg-xml-vendor/philips_sierra_1_04_01_2020-5-18_15-48-11.xml", {}),
}
EXPECTED_FORMAT = {"wfdb": "wfdb", "edf": "edf", "dicom": "dicom", "scp": "scp", "aecg": "aecg", "csv": "csv", "philips": "philips"}
WRITERS = {  # name -> (format, file name, writer options)
    "wfdb": ("wfdb", "rec.hea", {}),
    "edf": ("edf", "rec.edf", {}),
    "csv": ("csv", "rec.csv", {}),
    "aecg": ("aecg", "rec.xml", {}),
    "ecgaware-int": ("ecgaware", "rec.ecgaware.xml", {"encoding": "IntValue"}),
    "ecgaware-base64": ("ecgaware", "rec.ecgaware.xml", {"encoding": "BinaryData"}),
    "ecgaware-filelink": ("ecgaware", "rec.ecgaware.xml", {"encoding": "FileLink"}),
    "dicom": ("dicom", "rec.dcm", {}),
}
# What each format carries (docs/ecg-formats.md has the same table).
CARRIES = {
    "wfdb": {"patient": ("id", "name", "sex", "birth_date", "age_years"), "device": True, "annotations": "point", "measurements": False},
    "edf": {"patient": ("id", "name", "sex", "birth_date"), "device": False, "annotations": "interval", "measurements": False},
    "csv": {"patient": (), "device": False, "annotations": None, "measurements": False},
    "aecg": {"patient": ("id", "name", "sex", "birth_date", "age_years"), "device": True, "annotations": "full", "measurements": True},
    "ecgaware": {"patient": ("id", "name", "sex", "birth_date", "age_years"), "device": True, "annotations": "full", "measurements": True},
    "dicom": {"patient": ("id", "name", "sex", "birth_date", "age_years"), "device": True, "annotations": "full", "measurements": True},
}
TEXT_FORMATS_MAX_S = 20  # text formats get 20 s of each file; the binary ones get every file in full
_cache: dict[str, EcgRecord] = {}


def source(name: str) -> EcgRecord:
    if name not in _cache:
        rel, options = SOURCES[name]
        _cache[name] = read_ecg(DATA / rel, **options)
    return _cache[name]


def assert_samples_equal(a: EcgRecord, b: EcgRecord) -> None:
    assert [x.name for x in b.leads] == [x.name for x in a.leads]
    assert b.sample_rate == pytest.approx(a.sample_rate, rel=1e-9)
    assert b.n_samples == a.n_samples
    for x, y in zip(a.leads, b.leads):
        px, py = (x.microvolts(), y.microvolts()) if x.unit.lower() in UNIT_TO_UV else (x.physical(), y.physical())
        quantum = max(x.scale_uv, y.scale_uv) if x.unit.lower() in UNIT_TO_UV else max(x.scale, y.scale)
        worst = float(np.max(np.abs(px - py))) if len(px) else 0.0
        assert worst <= 0.5 * quantum + 1e-6 * max(1.0, float(np.max(np.abs(px), initial=0))), (x.name, worst, quantum)


def annotation_keys(record: EcgRecord, kind: str) -> list[tuple]:
    if kind == "point":
        # WFDB: points only; a note annotation at sample 0 is taken for a file definition by wfdb and dropped.
        return sorted((a.sample, f"{a.code} {a.text}".strip()) for a in record.annotations if a.sample > 0)
    if kind == "interval":
        return sorted((a.sample, a.end_sample or -1, f"{a.code} {a.text}".strip()) for a in record.annotations)
    return list(record.annotations)


def assert_metadata_kept(original: EcgRecord, back: EcgRecord, fmt: str) -> None:
    can = CARRIES[fmt]
    if original.start_time is not None:
        assert back.start_time is not None
        assert abs(back.start_time - original.start_time) < timedelta(seconds=1 if fmt == "edf" else 1e-3)
    for field in can["patient"]:
        assert getattr(back.patient, field) == getattr(original.patient, field), field
    if can["device"]:
        assert back.device == original.device
    if can["annotations"]:
        assert annotation_keys(back, can["annotations"]) == annotation_keys(original, can["annotations"])
    if can["measurements"]:
        assert back.measurements == original.measurements
        assert back.interpretation == original.interpretation


def writable(record: EcgRecord, fmt: str) -> str | None:
    """Why `fmt` cannot carry `record` (the writer must then refuse), or None."""
    if not record.leads:
        return "no leads"
    if fmt == "ecgaware" and len(record.leads) > 12:
        return "more than 12 channels"
    if fmt == "dicom" and any(x.unit.lower() not in UNIT_TO_UV for x in record.leads):
        return "non-voltage channels"
    return None


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_real_file_is_detected_by_content(name, tmp_path):
    path = DATA / SOURCES[name][0]
    assert detect_format(path) == EXPECTED_FORMAT[name.split("-")[0]]
    disguised = tmp_path / ("disguised" + (".csv" if not name.startswith("csv") else ".edf"))
    disguised.write_bytes(path.read_bytes())
    if not name.startswith("wfdb"):  # a WFDB record is two files; its header alone is what is sniffed
        assert detect_format(disguised) == EXPECTED_FORMAT[name.split("-")[0]]


@pytest.mark.parametrize("writer", sorted(WRITERS))
@pytest.mark.parametrize("name", sorted(SOURCES))
def test_round_trip_keeps_samples_and_what_the_format_carries(name, writer, tmp_path):
    fmt, filename, options = WRITERS[writer]
    original = source(name)
    if writer in ("csv", "aecg", "ecgaware-int") and original.duration_s > TEXT_FORMATS_MAX_S:
        original = original.slice(0, int(TEXT_FORMATS_MAX_S * original.sample_rate))
    reason = writable(original, fmt)
    if reason:
        with pytest.raises(EcgWriteError):
            write_ecg(original, tmp_path / filename, fmt, **options)
        return
    written = write_ecg(original, tmp_path / filename, fmt, **options)
    assert detect_format(written) == fmt
    back = read_ecg(written)
    assert_samples_equal(original, back)
    assert_metadata_kept(original, back, fmt)


def test_written_aecg_validates_against_the_hl7_schema(tmp_path):
    schema = etree.XMLSchema(etree.parse(str(AECG_XSD)))
    for name in ("dicom-pydicom", "wfdb-s0010_re", "csv-12lead"):
        out = write_ecg(source(name), tmp_path / f"{name}.xml", "aecg")
        assert schema.validate(etree.parse(str(out))), (name, schema.error_log.last_error)


def test_written_ecgaware_validates_against_its_schema(tmp_path):
    schema = load_schema()
    for encoding in ("IntValue", "BinaryData", "FileLink"):
        out = write_ecg(source("aecg-hl7-example"), tmp_path / f"{encoding}.ecgaware.xml", "ecgaware", encoding=encoding)
        assert schema.validate(etree.parse(str(out))), schema.error_log.last_error


def test_same_ecg_in_aecg_scp_and_dicom_reads_the_same():
    aecg = read_aecg(DATA / "aecg/hl7_example_aECG.xml")
    scp = read_scp(DATA / "scp/ecgtoolkit_Example.scp")
    dicom = read_dicom(DATA / "dicom/ecgtoolkit_Example.dcm")
    assert sorted(aecg.lead_names) == sorted(scp.lead_names) == sorted(dicom.lead_names)
    assert len(aecg.lead_names) == 12
    for other in (scp, dicom):
        assert other.sample_rate == aecg.sample_rate == 500
        assert other.n_samples == aecg.n_samples == 5000
        assert other.start_time == aecg.start_time
        assert other.patient.id == aecg.patient.id == "SBJ-123"
        assert other.patient.sex == "M" and other.patient.birth_date == aecg.patient.birth_date
        for lead in aecg.lead_names:
            diff = np.abs(other.lead(lead).microvolts() - aecg.lead(lead).microvolts())
            assert diff.max() <= 0.5 * aecg.lead(lead).scale_uv, lead  # all three hold the same 2.5 uV counts
    assert dicom.measurements and any(m.name == "PR Interval" and m.value == 148 for m in dicom.measurements)
    assert any(m.name == "MDC_ECG_TIME_PD_PR" and m.value == 148 for m in aecg.measurements)


def test_same_contec_recording_in_edf_and_scp_holds_the_same_counts():
    edf = read_edf(DATA / "edf/contec_ecg90a_0000050.edf")
    scp = read_scp(DATA / "scp/contec_ecg90a_0000050.scp")
    assert edf.lead_names == scp.lead_names and edf.sample_rate == scp.sample_rate == 800
    assert edf.start_time == scp.start_time
    # The SCP file stores 32767 of the 37855 samples per lead (its 16-bit byte counts are saturated at 65534).
    assert (edf.n_samples, scp.n_samples) == (37855, 32767)
    for lead in edf.lead_names:
        np.testing.assert_array_equal(edf.lead(lead).digital[: scp.n_samples], scp.lead(lead).digital)
    # ... but the two converters disagree on the amplitude scale (EDF +-1000 mV over 16 bits, SCP 5 uV per count).
    assert edf.lead("II").scale_uv == pytest.approx(2e6 / 65535, rel=1e-6) and scp.lead("II").scale_uv == 5.0


@pytest.mark.parametrize("name", ["aecg-hl7-example", "scp-ecgtoolkit", "dicom-ecgtoolkit", "dicom-pydicom", "edf-contec",
                                  "csv-12lead", "philips-1.03", "philips-1.04", "wfdb-s0010_re"])
def test_lead_mapping_obeys_einthoven(name):
    """II = I + III on every real 12-lead file: proves leads are named and scaled right.
    (95th percentile: the Philips files break the law in their last 100 samples as sierraecg decodes them.)"""
    record = source(name)
    one, two, three = (record.lead(x).microvolts() for x in ("I", "II", "III"))
    residual = np.abs(two - (one + three))
    assert np.percentile(residual, 95) <= max(3 * record.lead("II").scale_uv, 0.02 * np.ptp(two)), name


def test_annotation_only_edf_reads_its_sleep_stages_and_cannot_be_written(tmp_path):
    record = read_edf(DATA / "edf/test_edfann.edf")
    assert not record.leads and len(record.annotations) == 856
    first = record.annotations[0]
    assert (first.code, first.text, first.sample, first.end_sample) == ("Sleep", "stage W", 0, 30000)
    assert record.patient.id == "SN001"
    for fmt, _, _ in WRITERS.values():
        with pytest.raises(EcgWriteError):
            write_ecg(record, tmp_path / "x", fmt)


def test_philips_sierra_files_decode_to_12_leads_at_5_uv():
    for name in ("philips-1.03", "philips-1.04"):
        record = source(name)
        assert record.lead_names == ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
        assert (record.sample_rate, record.n_samples, record.leads[0].scale_uv) == (500, 5500, 5.0)
        assert 300 < np.ptp(record.lead("II").microvolts()) < 6000  # a QRS of 0.3 to 6 mV


def test_broken_files_give_specific_errors(tmp_path):
    cut = tmp_path / "cut.scp"
    cut.write_bytes((DATA / "scp/ecgtoolkit_Example.scp").read_bytes()[:3000])
    with pytest.raises(EcgFormatError, match="runs past the end"):
        read_ecg(cut)
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(EcgFormatError, match="unknown ECG format"):
        read_ecg(junk)
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("time_s,II\n0.000,0.1\n0.002,abc\n")
    with pytest.raises(EcgFormatError, match="row 3"):
        read_ecg(bad_csv)


def biosig_ascii(src: Path, out: Path) -> dict[str, np.ndarray]:
    """Independent decoder: biosig's save2gdf (Debian biosig-tools), installed here if missing."""
    import re
    import shutil
    import subprocess

    if shutil.which("save2gdf") is None:
        subprocess.run(["timeout", "300", "apt-get", "install", "-y", "-q", "biosig-tools"], check=True, capture_output=True)
    subprocess.run(["timeout", "60", "save2gdf", "-f=ASCII", str(src), str(out)], check=True, capture_output=True)
    labels = re.findall(r"^Label\s*=\s*(.*)$", out.read_text(errors="replace"), re.MULTILINE)
    return {label.strip(): np.loadtxt(f"{out}.a{i + 1:02d}") for i, label in enumerate(labels)}


@pytest.mark.parametrize("rel", ["scp/ecgtoolkit_Example.scp", "aecg/hl7_example_aECG.xml", "scp/contec_ecg90a_0000050.scp"])
def test_biosig_decodes_the_same_microvolts(rel, tmp_path):
    ours = read_ecg(DATA / rel)
    theirs = biosig_ascii(DATA / rel, tmp_path / "biosig")
    assert sorted(theirs) == sorted(ours.lead_names)
    for name in ours.lead_names:
        # biosig reads 37855 samples per Contec lead: past 32767 it runs into the next lead's bytes.
        np.testing.assert_array_equal(theirs[name][: ours.n_samples], ours.lead(name).microvolts(), err_msg=name)
