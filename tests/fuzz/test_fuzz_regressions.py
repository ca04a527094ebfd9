"""Crashers found by the fuzz targets, kept as explicit regression tests.

Each was an exception other than the module's documented error before the fix named in its test.
"""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

from connectors.ecg.convert import read_ecg
from connectors.ecg.exceptions import EcgFormatError

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
AECG = (DATA / "aecg" / "hl7_example_aECG.xml").read_bytes()
DICOM = DATA / "dicom" / "ecgtoolkit_Example.dcm"


def rejected(path: Path) -> EcgFormatError:
    with pytest.raises(EcgFormatError) as caught:
        read_ecg(path)
    assert str(path) in str(caught.value)
    return caught.value


def test_aecg_month_13_is_a_format_error(tmp_path):
    """Was ValueError('month must be in 1..12') from aecg.parse_ts."""
    path = tmp_path / "a.xml"
    path.write_bytes(AECG.replace(b'head value="20021122091000.000"', b'head value="20021322091000.000"', 1))
    assert "month must be in 1..12" in rejected(path).reason


def test_aecg_invalid_utf8_is_a_format_error(tmp_path):
    """Was OSError('Invalid bytes in character encoding') from lxml in aecg.read_aecg (same in philips)."""
    path = tmp_path / "a.xml"
    at = AECG.index(b"<component>")
    path.write_bytes(AECG[:at] + b"<x>\xff\xfe\xc3</x>" + AECG[at:])
    assert "encoding" in rejected(path).reason


def test_aecg_non_integer_digits_is_a_format_error(tmp_path):
    """Was ValueError(invalid literal for int()) from numpy in aecg._read_sequences."""
    path = tmp_path / "a.xml"
    at = AECG.index(b"<digits>") + len(b"<digits>")
    path.write_bytes(AECG[:at] + b"-?5 " + AECG[at:])
    assert "aecg" in rejected(path).reason


def test_dicom_odd_waveform_data_is_a_format_error(tmp_path):
    """Was ValueError('buffer size must be a multiple of element size') from numpy in dicom_ecg._raw_samples."""
    ds = pydicom.dcmread(DICOM)
    group = ds.WaveformSequence[0]
    group.WaveformBitsAllocated, group.WaveformSampleInterpretation = 32, "SL"  # 4-byte samples
    data = bytes(group.WaveformData)
    group.WaveformData = data[: len(data) - len(data) % 4 - 2]  # even (pydicom keeps it) but not a multiple of 4
    path = tmp_path / "odd.dcm"
    ds.save_as(path)
    assert "dicom" in rejected(path).reason


def test_dicom_without_bits_allocated_is_a_format_error(tmp_path):
    """Was AttributeError('WaveformBitsAllocated') in dicom_ecg._raw_samples."""
    ds = pydicom.dcmread(DICOM)
    for group in ds.WaveformSequence:
        del group.WaveformBitsAllocated
    path = tmp_path / "nobits.dcm"
    ds.save_as(path)
    assert "WaveformBitsAllocated" in rejected(path).reason


def test_msh_alone_on_its_line_is_an_hl7_error():
    """Was IndexError('string index out of range') in connectors/hl7/message.read_header."""
    from connectors.hl7.errors import Hl7Error
    from connectors.hl7.message import parse_message

    with pytest.raises(Hl7Error) as caught:
        parse_message(b"MSH\rPID|||123\rOBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC\r")
    assert caught.value.ack_code == "AR"
    assert "MSH" in caught.value.reason
