"""Fuzz the ECG file readers (connectors/ecg: read_ecg with content detection) with mutated real files.

Every sample in ../shared/data (aECG, Philips Sierra XML, CSV, DICOM, EDF, SCP-ECG, WFDB header and
signal) is mutated at the byte level, written to a temp file and read. Property: an EcgRecord or an
EcgFormatError (a DecodeError) naming the file and what was wrong: nothing else, no hang.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from fuzz_mutations import EXAMPLES, assert_clear, budget, mutated
from hypothesis import given
from hypothesis import strategies as st

from connectors.ecg.convert import read_ecg
from connectors.ecg.exceptions import EcgFormatError
from connectors.ecg.model import EcgRecord

pytestmark = pytest.mark.timeout(3600)
DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
SINGLE = [DATA / rel for rel in (
    "aecg/fda_minimum_aecg.xml", "aecg/hl7_example_aECG.xml", "ecg-xml-vendor/philips_sierra_1_03_129DYPRG.xml",
    "ecg-xml-vendor/philips_sierra_1_04_01_2020-5-18_15-48-11.xml", "csv/ecg_plot_12lead_500hz.csv",
    "dicom/ecgtoolkit_Example.dcm", "dicom/pydicom_waveform_ecg.dcm", "edf/contec_ecg90a_0000050.edf",
    "edf/test_edfann.edf", "scp/contec_ecg90a_0000050.scp", "scp/ecgtoolkit_Example.scp")]
WFDB = DATA / "wfdb"
EXAMPLES_ECG = max(1, EXAMPLES // 10)


def options_for(path: Path) -> dict:
    return {"sample_rate": 500.0} if path.suffix == ".csv" else {}  # the CSV sample has no time column


def check_read(path: Path) -> None:
    try:
        record = read_ecg(path, **options_for(path))
    except EcgFormatError as exc:
        assert exc.path == str(path) or str(path) in str(exc), f"rejection does not name the file: {exc}"
        assert_clear(exc.reason)
        return
    assert isinstance(record, EcgRecord)


def test_every_sample_reads_unmutated(tmp_path):
    for sample in SINGLE:
        assert isinstance(read_ecg(sample, **options_for(sample)), EcgRecord), sample
    assert isinstance(read_ecg(WFDB / "100"), EcgRecord)


@budget(EXAMPLES_ECG)
@given(index=st.integers(0, len(SINGLE) - 1), data=st.data())
def test_mutated_single_file_formats_read_or_reject_clearly(index, data):
    sample = SINGLE[index]
    raw = data.draw(mutated([sample.read_bytes()], max_mutations=6))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / sample.name
        path.write_bytes(raw)
        check_read(path)


@budget(EXAMPLES_ECG)
@given(part=st.sampled_from([".hea", ".dat"]), data=st.data())
def test_mutated_wfdb_record_reads_or_rejects_clearly(part, data):
    with tempfile.TemporaryDirectory() as tmp:
        for suffix in (".hea", ".dat", ".atr"):
            shutil.copy(WFDB / f"100{suffix}", Path(tmp) / f"100{suffix}")
        target = Path(tmp) / f"100{part}"
        target.write_bytes(data.draw(mutated([target.read_bytes()], max_mutations=6)))
        check_read(Path(tmp) / "100.hea")
