"""Pure wire helpers: control ids, ACK parsing, Retry-After, lane partitioning, bundle entry mapping."""

from __future__ import annotations

import pytest

from hub.rules.sinks import BackoffConfig
from hub.sinks.fhir_client import entry_positions, outcome_text, retry_after_seconds
from hub.sinks.lanes import backoff_delay, lane_for
from hub.sinks.mllp import control_id_for
from hub.sinks.mllp_link import parse_ack


def test_control_id_is_deterministic_order_free_and_fits_msh10():
    a = control_id_for("hl7v2", ["e1", "e2"])
    assert a == control_id_for("hl7v2", ["e2", "e1"])
    assert a != control_id_for("hl7v2", ["e1"]) != control_id_for("hl7v2", ["e1", "e2"], "dlq7")
    assert a != control_id_for("pcd04", ["e1", "e2"])
    assert len(a) == 20 and a.isalnum()


def test_parse_ack_reads_msa_and_err():
    frame = (b"\x0bMSH|^~\\&|EHR|H|DEVSYNC|HUB|20260101||ACK^R01^ACK|A1|P|2.6\r"
             b"MSA|AE|397b9bc1ca94ed271fda|bad OBX\rERR|||207^Application error^HL70357|E\r\x1c\r")
    ack = parse_ack(frame)
    assert (ack.code, ack.control_id) == ("AE", "397b9bc1ca94ed271fda")
    assert "bad OBX" in ack.text and "207^Application error" in ack.text and not ack.accepted


def test_parse_ack_without_msa_is_none():
    assert parse_ack(b"\x0bMSH|^~\\&|EHR\r\x1c\r") is None


@pytest.mark.parametrize("header, seconds", [("7", 7.0), (None, None), ("soon", None), ("0", 0.0)])
def test_retry_after(header, seconds):
    assert retry_after_seconds(header) == seconds


def test_retry_after_http_date_in_the_past_is_zero():
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_lane_partition_is_stable_and_spreads():
    assert lane_for("MRN0001", 4) == lane_for("MRN0001", 4)
    assert len({lane_for(f"MRN{i:04d}", 4) for i in range(100)}) == 4


def test_backoff_grows_and_caps():
    config = BackoffConfig(initial_s=0.5, max_s=4, multiplier=2)
    assert [backoff_delay(config, n) for n in (1, 2, 3, 4, 5)] == [0.5, 1, 2, 4, 4]


def test_entry_positions_follow_conditional_create_identifiers():
    bundle = {"entry": [{"request": {"ifNoneExist": "identifier=urn:devsync:event-id|b"}},
                        {"request": {"url": "Device"}},
                        {"request": {"ifNoneExist": "identifier=urn:devsync:event-id|a%2Fx"}}]}
    assert entry_positions(bundle) == {"b": 0, "a/x": 2}


def test_outcome_text_reads_operation_outcome():
    body = b'{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","diagnostics":"no unit"}]}'
    assert outcome_text(body) == "no unit"
    assert outcome_text(b"<html>Bad gateway</html>") == "<html>Bad gateway</html>"
