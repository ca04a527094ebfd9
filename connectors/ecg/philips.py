"""Philips Sierra ECG XML (PageWriter / IntelliSpace, versions 1.03 and 1.04.x) reader.

The XLI-compressed base64 leads are decoded by the `sierraecg` package; rate, signal
resolution (µV per count), acquisition date/time, patient id/name/sex/age and the machine
come from the XML itself (UTF-8 or UTF-16). Read only: write aECG or DICOM instead.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import sierraecg
from lxml import etree

from connectors.ecg.exceptions import EcgFormatError
from connectors.ecg.model import Device, EcgRecord, Lead, Patient, canonical_lead_name

NS = "http://www3.medical.philips.com"
_Q = f"{{{NS}}}"
_SEX = {"male": "M", "female": "F"}


def read_philips(path: str | Path) -> EcgRecord:
    try:
        root = etree.parse(str(path), etree.XMLParser(huge_tree=True, resolve_entities=False)).getroot()
    except etree.XMLSyntaxError as exc:
        raise EcgFormatError(path, f"not well-formed XML: {exc}") from exc
    if root.tag != _Q + "restingecgdata":
        raise EcgFormatError(path, f"root element is {root.tag}, expected {{{NS}}}restingecgdata")
    try:
        ecg = sierraecg.read_file(str(path))
    except Exception as exc:  # sierraecg raises its own errors plus ValueError on bad XLI data
        raise EcgFormatError(path, f"waveforms cannot be decoded: {exc}") from exc
    resolution = float(_text(root, "signalresolution") or 5.0)
    rate = float(_text(root, "samplingrate") or ecg.leads[0].sampling_freq)
    leads = tuple(
        Lead(canonical_lead_name(lead.label), np.asarray(lead.samples, dtype=np.int32), resolution, 0.0, "uV") for lead in ecg.leads
    )
    lengths = {len(lead.digital) for lead in leads}
    if len(lengths) > 1:
        shortest = min(lengths)
        leads = tuple(Lead(x.name, x.digital[:shortest], x.scale, x.baseline, x.unit) for x in leads)
    return EcgRecord(leads=leads, sample_rate=rate, start_time=_start(root), patient=_patient(root),
                     device=_device(root), source_format="philips")


def _find(root, tag: str):
    return root.find(f".//{_Q}{tag}")


def _text(root, tag: str) -> str:
    el = _find(root, tag)
    return (el.text or "").strip() if el is not None else ""


def _start(root) -> datetime | None:
    acq = _find(root, "dataacquisition")
    if acq is None or not acq.get("date"):
        return None
    try:
        return datetime.fromisoformat(f"{acq.get('date')}T{acq.get('time') or '00:00:00'}")
    except ValueError:
        return None


def _patient(root) -> Patient:
    years = _text(root, "years")
    name = " ".join(x for x in (_text(root, "firstname"), _text(root, "lastname")) if x)
    return Patient(id=_text(root, "patientid"), name=name, sex=_SEX.get(_text(root, "sex").lower(), ""),
                   age_years=float(years) if years.replace(".", "", 1).isdigit() else None)


def _device(root) -> Device:
    machine = _find(root, "machine")
    if machine is None:
        return Device(manufacturer="Philips")
    return Device(manufacturer="Philips", model=(machine.text or "").strip(), serial=machine.get("machineid", ""))
