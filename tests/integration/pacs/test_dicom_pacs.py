"""DICOM ECG to a real PACS (Orthanc): C-STORE, retrieve through the REST API, compare waveforms."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from orthanc_peer import free_port

from connectors.ecg import read_ecg
from connectors.ecg.dicom_ecg import AMBULATORY_ECG, GENERAL_ECG, TWELVE_LEAD_ECG, read_dicom
from hub.errors import SinkError
from hub.rules.ecg import PacsRules
from hub.sinks.dicom import DicomSink

pytestmark = pytest.mark.integration
DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"


def retrieve_record(orthanc, sop_uid: str, tmp_path: Path):
    data = orthanc.instance_file(sop_uid)
    path = tmp_path / f"{sop_uid}.dcm"
    path.write_bytes(data)
    return pydicom.dcmread(io.BytesIO(data)), read_dicom(path)


def assert_same_waveform(source, back) -> None:
    assert back.sample_rate == pytest.approx(source.sample_rate)
    assert [lead.name for lead in back.leads] == [lead.name for lead in source.leads]
    for a, b in zip(source.leads, back.leads, strict=True):
        assert len(a.digital) == len(b.digital)
        # same physical values within half a count of the source's resolution
        assert np.max(np.abs(a.microvolts() - b.microvolts())) <= a.scale_uv / 2 + 1e-9, a.name


@pytest.mark.parametrize(("source", "sop_class", "seconds"), [
    ("aecg/hl7_example_aECG.xml", TWELVE_LEAD_ECG, None),   # 12 leads, 500 Hz, 10 s
    ("wfdb/s0010_re.hea", GENERAL_ECG, 12),                   # PTB: 15 leads at 1000 Hz
    ("wfdb/100.hea", AMBULATORY_ECG, 90),                     # MIT-BIH: 2 leads, 360 Hz, 90 s
])
def test_stored_ecg_is_retrieved_with_the_same_waveform(orthanc, pacs_rules, tmp_path, source, sop_class, seconds):
    record = read_ecg(DATA / source)
    if seconds:
        record = record.slice(0, int(seconds * record.sample_rate))
    result = asyncio.run(DicomSink(pacs_rules).store_record(record))
    assert result.status == 0x0000
    assert result.sop_class_uid == sop_class
    ds, back = retrieve_record(orthanc, result.sop_instance_uid, tmp_path)
    assert str(ds.SOPClassUID) == sop_class
    assert str(ds.Modality) == "ECG"
    assert str(ds.PatientID) == record.patient.id
    assert_same_waveform(record, back)


def test_sending_the_same_record_twice_stores_one_instance(orthanc, pacs_rules):
    record = read_ecg(DATA / "dicom" / "ecgtoolkit_Example.dcm")
    sink = DicomSink(pacs_rules)
    first = asyncio.run(sink.store_record(record))
    before = len(orthanc.instances())
    second = asyncio.run(sink.store_record(record))
    assert first.sop_instance_uid == second.sop_instance_uid
    assert len(orthanc.instances()) == before


def test_unreachable_pacs_is_a_retriable_error():
    pacs = PacsRules(host="127.0.0.1", port=free_port(), called_aet="NOBODY", connect_timeout_s=2, retry_after_s=0.5)
    record = read_ecg(DATA / "dicom" / "ecgtoolkit_Example.dcm")
    with pytest.raises(SinkError) as caught:
        asyncio.run(DicomSink(pacs).store_record(record))
    assert caught.value.retriable is True
    assert caught.value.retry_after == 0.5
    assert "association" in caught.value.reason


def test_a_pacs_that_refuses_ecg_is_a_non_retriable_rejection():
    """A real DICOM SCP (pynetdicom) that stores CT only: the ECG's presentation context is refused."""
    from pynetdicom import AE
    from pynetdicom.sop_class import CTImageStorage, Verification

    scp = AE(ae_title="CTONLY")
    scp.add_supported_context(CTImageStorage)
    scp.add_supported_context(Verification)
    port = free_port()
    server = scp.start_server(("127.0.0.1", port), block=False)
    try:
        pacs = PacsRules(host="127.0.0.1", port=port, called_aet="CTONLY", connect_timeout_s=5)
        record = read_ecg(DATA / "dicom" / "ecgtoolkit_Example.dcm")
        with pytest.raises(SinkError) as caught:
            asyncio.run(DicomSink(pacs).store_record(record))
    finally:
        server.shutdown()
    assert caught.value.retriable is False
    assert "1.2.840.10008.5.1.4.1.1.9.1.1" in caught.value.reason


def test_a_record_no_ecg_iod_can_hold_is_rejected_before_sending(pacs_rules):
    record = read_ecg(DATA / "wfdb" / "100.hea")
    record = record.slice(0, 3600).with_changes(sample_rate=20.0)  # 20 Hz: below every ECG IOD's range
    with pytest.raises(SinkError) as caught:
        asyncio.run(DicomSink(pacs_rules).store_record(record))
    assert caught.value.retriable is False
    assert "fits no DICOM ECG IOD" in caught.value.reason
