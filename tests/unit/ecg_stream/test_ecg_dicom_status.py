"""C-STORE statuses: which are stored, which are worth a retry, which go to the DLQ with a reason."""

from __future__ import annotations

import pytest

from hub.sinks.dicom import classify_status


@pytest.mark.parametrize("status", [0x0000, 0xB000, 0xB006, 0xB007])
def test_success_and_warnings_are_stored(status):
    assert classify_status(status, "1.2.3", "PACS X") is None


@pytest.mark.parametrize(("status", "retriable", "words"), [
    (0xA700, True, "out of resources"),
    (0xA7FF, True, "out of resources"),
    (0xA900, False, "does not match SOP class"),
    (0xC000, False, "cannot understand"),
    (0x0122, False, "SOP class not supported"),
    (0x0124, False, "not authorised"),
    (0x0110, False, "failure"),
])
def test_failures_say_what_and_whether_to_retry(status, retriable, words):
    error = classify_status(status, "1.2.3.4", "PACS ORTHANC@127.0.0.1:4242")
    assert error.retriable is retriable
    assert words in error.reason and "1.2.3.4" in error.reason and f"0x{status:04X}" in error.reason
