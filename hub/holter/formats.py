"""File formats the Holter API accepts (`file_format`) and the ECG reader each one maps to.

mit -> wfdb (a zip or tar of a WFDB record's .hea and .dat files, optional .atr), edf (EDF/EDF+),
csv (time column + one column per lead), and the short-record formats the ECG readers know:
aecg (HL7 aECG), scp (SCP-ECG), dicom (DICOM waveform), philips (Sierra XML), ecgaware.
Kept free of heavy imports: the API checks formats before any signal library is loaded.
"""

from __future__ import annotations

from hub.holter.errors import HolterError

FILE_FORMATS = {"mit": "wfdb", "edf": "edf", "csv": "csv", "aecg": "aecg", "scp": "scp", "dicom": "dicom",
                "philips": "philips", "ecgaware": "ecgaware"}


def check_file_format(fmt: str) -> str:
    """The reader format for an API `file_format`, or HolterError('unsupported_format') naming the accepted ones."""
    if fmt not in FILE_FORMATS:
        raise HolterError("unsupported_format", f"file_format {fmt!r} is not supported; supported: {', '.join(FILE_FORMATS)} "
                          "(mit = zip or tar of a WFDB record's .hea and .dat files)")
    return FILE_FORMATS[fmt]
