"""`devsync ecg ...` end to end on real files (through hub.cli.main)."""

from __future__ import annotations

import json

import numpy as np
import wfdb
from PIL import Image

from connectors.ecg import read_ecg, write_ecg
from hub.cli import main
from hub.ecg.analysis import detect_record_qrs


def test_info_prints_leads_rate_patient_and_annotations(data_dir, capsys):
    assert main(["ecg", "info", str(data_dir / "scp/ecgtoolkit_Example.scp"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "scp" and info["sample_rate_hz"] == 500 and len(info["leads"]) == 12
    assert info["patient"]["id"] == "SBJ-123" and info["duration_s"] == 10.0
    assert main(["ecg", "info", str(data_dir / "wfdb/100.hea")]) == 0
    text = capsys.readouterr().out
    assert "MLII, V5" in text and "'N': 2239" in text


def test_convert_by_extension_and_by_to(data_dir, tmp_path, capsys):
    src = data_dir / "aecg/hl7_example_aECG.xml"
    assert main(["ecg", "convert", str(src), str(tmp_path / "ex.dcm")]) == 0
    assert main(["ecg", "convert", str(src), str(tmp_path / "ex.xml"), "--to", "ecgaware", "--encoding", "BinaryData"]) == 0
    dicom, aware = read_ecg(tmp_path / "ex.dcm"), read_ecg(tmp_path / "ex.xml")
    assert (dicom.source_format, aware.source_format) == ("dicom", "ecgaware")
    np.testing.assert_array_equal(dicom.lead("V3").digital, aware.lead("V3").digital)


def test_convert_reports_unreadable_input(tmp_path, capsys):
    bad = tmp_path / "bad.edf"
    bad.write_bytes(b"not an ecg at all")
    assert main(["ecg", "convert", str(bad), str(tmp_path / "out.csv")]) == 2
    assert "unknown ECG format" in capsys.readouterr().err


def test_detect_writes_an_annotation_file_wfdb_reads(data_dir, tmp_path, capsys):
    five_minutes = read_ecg(data_dir / "wfdb/100.hea").slice(0, 360 * 300)
    write_ecg(five_minutes, tmp_path / "r100.hea")
    assert main(["ecg", "detect", str(tmp_path / "r100.dat"), "--out", str(tmp_path / "r100.qrs")]) == 0
    out = capsys.readouterr().out
    assert "Se 1.0000  +P 1.0000" in out
    ann = wfdb.rdann(str(tmp_path / "r100"), "qrs")
    np.testing.assert_array_equal(ann.sample, detect_record_qrs(five_minutes))
    assert set(ann.symbol) == {"N"} and ann.fs == 360


def test_plot_draws_a_strip_on_ecg_paper(data_dir, tmp_path):
    out = tmp_path / "strip.png"
    args = ["ecg", "plot", str(data_dir / "dicom/pydicom_waveform_ecg.dcm"), "--out", str(out), "--seconds", "4",
            "--leads", "I,II,V2"]
    assert main(args) == 0
    image = np.asarray(Image.open(out).convert("RGB")).astype(int)
    height, width = image.shape[:2]
    assert abs(width / 100 * 25.4 - (4 * 25 + 20)) < 2  # 25 mm/s at 100 dpi
    assert abs(height / 100 * 25.4 - (3 * 30 + 14)) < 2  # 30 mm per lead
    black = (image.sum(axis=2) < 150).mean()
    grid = ((image[..., 0] > 200) & (image[..., 1] < 200)).mean()
    assert black > 0.002 and grid > 0.05  # a trace on a red grid
    assert main(["ecg", "plot", str(data_dir / "dicom/pydicom_waveform_ecg.dcm"), "--out", str(out), "--leads", "V9"]) == 2
