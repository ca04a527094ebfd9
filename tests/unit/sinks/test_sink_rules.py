"""The `sinks:` rule section: every setting validated with a message that names the field."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from hub.rules.sinks import SinkRules


def problems(data: dict) -> str:
    with pytest.raises(ValidationError) as raised:
        SinkRules.model_validate(data)
    return str(raised.value)


def test_full_section_validates():
    rules = SinkRules.model_validate({
        "hl7v2": {"host": "ehr", "port": 2575, "connections": 8, "tls": {"ca_file": "ca.pem", "cert_file": "c.pem",
                                                                          "key_file": "k.pem"}},
        "pcd04": {"host": "am", "port": 2576},
        "fhir": {"base_url": "https://fhir/r4", "auth": {"oauth2": {"token_url": "https://idp/token",
                                                                    "client_id": "hub", "client_secret_env": "S"}}},
        "charting": [{"sink": "hl7v2", "data_classes": ["vital"], "interval_s": 300, "change_threshold": 10}],
    })
    assert rules.hl7v2.ack_timeout_s == 10.0 and rules.fhir.batch_size == 100
    assert rules.hl7v2.backoff.initial_s == 0.5


@pytest.mark.parametrize("data, message", [
    ({"fhir": {"base_url": "x", "auth": {}}}, "give exactly one of token_file, token_env, oauth2 (got: none)"),
    ({"fhir": {"base_url": "x", "auth": {"token_file": "a", "token_env": "B"}}}, "got: token_file, token_env"),
    ({"fhir": {"base_url": "x", "auth": {"oauth2": {"token_url": "u", "client_id": "c"}}}},
     "give exactly one of client_secret_file or client_secret_env"),
    ({"fhir": {"base_url": "x", "auth": {"oauth2": {"token_url": "u", "client_id": "c", "client_secret": "s"}}}},
     "client_secret\n  Extra inputs are not permitted"),
    ({"hl7v2": {"host": "h", "port": 1, "tls": {"cert_file": "c.pem"}}}, "cert_file and key_file must be given together"),
    ({"hl7v2": {"host": "h", "port": 70000}}, "hl7v2.port"),
    ({"hl7v2": {"host": "h", "port": 1, "connections": 0}}, "hl7v2.connections"),
    ({"charting": [{"sink": "hl7v2", "data_classes": ["vitals"]}]}, "charting.0.data_classes.0"),
])
def test_bad_settings_name_the_field(data, message):
    assert message in problems(data)
