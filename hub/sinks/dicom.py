"""DICOM ECG to a PACS: build the object with pydicom, send it by C-STORE with pynetdicom.

    sink = DicomSink(rules.ecg.pacs)
    result = await sink.store_record(record)          # -> StoreResult (SOP instance UID, status)

The object is the formats' `build_dicom_ecg` (connectors.ecg.dicom_ecg): 12-lead ECG Waveform
Storage when it fits (<= 13 leads, 200-1000 Hz, <= 16384 samples), else General ECG (<= 24
leads) or Ambulatory ECG (<= 12 leads, long recordings). Its UIDs derive from the record's
content, so sending the same record twice stores one instance (the PACS replaces it).

Failures say which kind they are (hub.errors.SinkError):
- retriable=True: the PACS is unreachable, refuses or aborts the association, times out, or
  answers "out of resources" (0xA7xx); try again after `retry_after`.
- retriable=False: the PACS accepted the association but rejected this object (status
  0xA9xx/0xCxxx, or no presentation context for its SOP class), or the record cannot be
  a DICOM ECG at all. The reason is what goes to the DLQ / the watch folder's reason file.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from pydicom.dataset import Dataset

from hub.errors import SinkError
from hub.logs import get_logger
from hub.rules.ecg import PacsRules
from hub.sinks.metrics import SINK_MESSAGES, SINK_SEND_SECONDS

NAME = "dicom"
log = get_logger("sink.dicom")
VERIFICATION = "1.2.840.10008.1.1"
WARNING_STATUSES = {0xB000, 0xB007, 0xB006}  # coercion / elements discarded / does not match: stored anyway


@dataclass(frozen=True)
class StoreResult:
    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    status: int  # 0x0000 success, 0xB0xx warning (stored)


def build_dataset(record, **uids: str) -> Dataset:
    """The DICOM ECG dataset for an EcgRecord; a record no ECG IOD can hold is a non-retriable SinkError."""
    from connectors.ecg.dicom_ecg import build_dicom_ecg
    from connectors.ecg.exceptions import EcgWriteError

    try:
        return build_dicom_ecg(record, **uids)
    except EcgWriteError as exc:
        raise SinkError(f"sink.dicom: {exc}", retriable=False) from exc


def classify_status(status: int, sop_instance_uid: str, peer: str) -> SinkError | None:
    """None when stored (success or warning); otherwise the SinkError the status means."""
    if status == 0x0000 or status in WARNING_STATUSES or (status & 0xF000) == 0xB000:
        return None
    where = f"sink.dicom: {peer} answered C-STORE of {sop_instance_uid} with status 0x{status:04X}"
    if (status & 0xFF00) == 0xA700:
        return SinkError(f"{where} (refused: out of resources); will retry", retriable=True, retry_after=5.0)
    if (status & 0xFF00) == 0xA900:
        return SinkError(f"{where} (error: data set does not match SOP class)", retriable=False)
    if (status & 0xF000) == 0xC000:
        return SinkError(f"{where} (error: cannot understand)", retriable=False)
    if status == 0x0122:
        return SinkError(f"{where} (refused: SOP class not supported)", retriable=False)
    if status == 0x0124:
        return SinkError(f"{where} (refused: not authorised)", retriable=False)
    return SinkError(f"{where} (failure)", retriable=False)


def send_dataset(ds: Dataset, pacs: PacsRules) -> StoreResult:
    """C-STORE one dataset (blocking; runs in a worker thread from DicomSink)."""
    from pynetdicom import AE, build_context

    peer = f"PACS {pacs.called_aet}@{pacs.host}:{pacs.port}"
    sop_class = str(ds.SOPClassUID)
    ae = AE(ae_title=pacs.calling_aet)
    ae.acse_timeout = pacs.connect_timeout_s
    ae.network_timeout = pacs.connect_timeout_s
    ae.connection_timeout = pacs.connect_timeout_s
    ae.dimse_timeout = pacs.dimse_timeout_s
    # Verification goes along so a PACS that refuses only the ECG class still opens the association:
    # that refusal is then a clear, non-retriable "SOP class not accepted" instead of an abort.
    contexts = [build_context(sop_class, [str(ds.file_meta.TransferSyntaxUID)]), build_context(VERIFICATION)]
    started = time.perf_counter()
    assoc = ae.associate(pacs.host, pacs.port, contexts=contexts, ae_title=pacs.called_aet)
    if not assoc.is_established:
        state = "rejected" if assoc.is_rejected else ("aborted" if assoc.is_aborted else "could not be opened")
        SINK_MESSAGES.labels(NAME, "association-failed").inc()
        raise SinkError(f"sink.dicom: association with {peer} {state} (is the PACS up and does it accept AE "
                        f"{pacs.calling_aet!r}?); will retry", retriable=True, retry_after=pacs.retry_after_s)
    try:
        if not any(cx.abstract_syntax == sop_class for cx in assoc.accepted_contexts):
            SINK_MESSAGES.labels(NAME, "context-rejected").inc()
            raise SinkError(f"sink.dicom: {peer} does not accept SOP class {sop_class} (no presentation context); "
                            "configure the PACS to accept ECG waveform storage", retriable=False)
        status_ds = assoc.send_c_store(ds)
    finally:
        assoc.release()
    SINK_SEND_SECONDS.labels(NAME).observe(time.perf_counter() - started)
    if not status_ds or "Status" not in status_ds:
        SINK_MESSAGES.labels(NAME, "no-answer").inc()
        raise SinkError(f"sink.dicom: no C-STORE response from {peer} for {ds.SOPInstanceUID} (timeout or abort); "
                        "will retry", retriable=True, retry_after=pacs.retry_after_s)
    status = int(status_ds.Status)
    SINK_MESSAGES.labels(NAME, f"0x{status:04X}").inc()
    error = classify_status(status, str(ds.SOPInstanceUID), peer)
    if error is not None:
        raise error
    return StoreResult(sop_class, str(ds.SOPInstanceUID), str(ds.StudyInstanceUID), status)


class DicomSink:
    """Sends EcgRecords to one PACS. `store_record` never blocks the event loop."""

    name = NAME

    def __init__(self, pacs: PacsRules):
        self.pacs = pacs

    async def store_record(self, record, **uids: str) -> StoreResult:
        ds = build_dataset(record, **uids)
        return await self.store_dataset(ds)

    async def store_dataset(self, ds: Dataset) -> StoreResult:
        try:
            result = await asyncio.to_thread(send_dataset, ds, self.pacs)
        except SinkError:
            raise
        except (OSError, RuntimeError) as exc:  # socket errors and pynetdicom's own runtime failures
            raise SinkError(f"sink.dicom: sending to {self.pacs.host}:{self.pacs.port} failed: {exc}; will retry",
                            retriable=True, retry_after=self.pacs.retry_after_s) from exc
        log.info("stored", sop_class=result.sop_class_uid, sop_instance=result.sop_instance_uid,
                 status=f"0x{result.status:04X}")
        return result
