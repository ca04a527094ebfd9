"""ECG files in and out: one canonical record (model.py), one module per format.

    record = read_ecg("in.scp")                 # format detected by content
    write_ecg(record, "out.xml", format="aecg")  # or by the output's extension
    detect_format("in.dat")                      # "wfdb", "edf", "csv", "aecg", ...

Readers: wfdb, edf, csv, aecg, ecgaware, scp, dicom, philips.
Writers: wfdb, edf, csv, aecg, ecgaware, dicom (SCP-ECG and Philips are read only).
"""

from __future__ import annotations

from connectors.ecg.convert import (
    EXTENSIONS,
    READERS,
    WRITERS,
    convert_ecg,
    format_for_output,
    read_ecg,
    write_ecg,
)
from connectors.ecg.detect import FORMATS, detect_format
from connectors.ecg.exceptions import EcgFormatError, EcgWriteError
from connectors.ecg.model import Annotation, Device, EcgRecord, Lead, Measurement, Patient, Session

__all__ = [
    "EXTENSIONS", "FORMATS", "READERS", "WRITERS", "Annotation", "Device", "EcgFormatError", "EcgRecord", "EcgWriteError",
    "Lead", "Measurement", "Patient", "Session", "convert_ecg", "detect_format", "format_for_output", "read_ecg", "write_ecg",
]
