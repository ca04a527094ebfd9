from __future__ import annotations

import pytest

from connectors.ecg import EcgFormatError, EcgWriteError, detect_format, format_for_output, read_ecg, write_ecg


@pytest.mark.parametrize(
    "name,expected",
    [("rec.hea", "wfdb"), ("rec", "wfdb"), ("a.edf", "edf"), ("a.csv", "csv"), ("a.xml", "aecg"),
     ("a.ecgaware.xml", "ecgaware"), ("a.dcm", "dicom")],
)
def test_output_format_from_extension(name, expected):
    assert format_for_output(name) == expected


def test_unknown_output_extension_asks_for_to():
    with pytest.raises(EcgWriteError, match="--to"):
        format_for_output("a.pdf")


def test_read_only_formats_cannot_be_written(record_factory, tmp_path):
    with pytest.raises(EcgWriteError, match="read only"):
        write_ecg(record_factory(), tmp_path / "x.scp", "scp")


def test_detection_errors_say_what_was_found(tmp_path):
    empty = tmp_path / "empty.edf"
    empty.write_bytes(b"")
    with pytest.raises(EcgFormatError, match="empty"):
        detect_format(empty)
    other_xml = tmp_path / "other.xml"
    other_xml.write_text("<Patient xmlns='http://hl7.org/fhir'/>")
    with pytest.raises(EcgFormatError, match="unknown ECG format"):
        detect_format(other_xml)
    with pytest.raises(EcgFormatError, match="no such file"):
        detect_format(tmp_path / "missing.dcm")


@pytest.mark.parametrize("fmt,name", [("wfdb", "r.hea"), ("edf", "r.edf"), ("aecg", "r.xml"), ("ecgaware", "r.ecgaware.xml"),
                                      ("dicom", "r.dcm"), ("csv", "r.csv")])
def test_written_files_are_detected_by_content_even_renamed(record_factory, tmp_path, fmt, name):
    written = write_ecg(record_factory(), tmp_path / name)
    if fmt == "wfdb":
        assert detect_format(written) == "wfdb"
        return
    renamed = written.with_name("renamed.bin")
    written.rename(renamed)
    assert detect_format(renamed) == fmt
    assert read_ecg(renamed).n_samples == 1000


def test_ecgaware_refuses_more_than_12_channels(record_factory, tmp_path):
    with pytest.raises(EcgWriteError, match="1 to 12 channels"):
        write_ecg(record_factory(n_leads=15), tmp_path / "r.ecgaware.xml")


def test_ecgaware_invalid_document_gives_line_and_schema_message(tmp_path):
    path = tmp_path / "bad.xml"
    path.write_text('<ecgAware xmlns="urn:devsync:ecgaware:1" version="1.0">\n<study id="s"/>\n</ecgAware>\n')
    with pytest.raises(EcgFormatError, match="line 1: .*Expected is .*patientData"):
        read_ecg(path)
