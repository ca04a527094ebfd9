"""Fixtures of the PACS tests: one real Orthanc for the module."""

from __future__ import annotations

import pytest
from orthanc_peer import start_orthanc

from hub.rules.ecg import PacsRules


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory):
    peer = start_orthanc(tmp_path_factory.mktemp("orthanc"))
    yield peer
    peer.stop()


@pytest.fixture
def pacs_rules(orthanc) -> PacsRules:
    return PacsRules(host="127.0.0.1", port=orthanc.dicom_port, called_aet=orthanc.aet, calling_aet="DEVSYNC-TEST",
                     connect_timeout_s=5, dimse_timeout_s=20, retry_after_s=0.5)
