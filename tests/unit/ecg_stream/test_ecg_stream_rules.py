"""The `ecg:` rule section: defaults, YAML loading, and errors that name file, line and field."""

from __future__ import annotations

import pytest

from hub.errors import RuleError
from hub.rules.load import load_rules

ECG = """\
version: 1
ecg:
  stream:
    devices:
      - {id: ECGS-01, host: 127.0.0.1, port: 7100}
    jitter_buffer_s: 1.5
  alarms:
    pause_s: 4
  watch:
    location: ECG-LAB
  pacs: {host: pacs.example.org, port: 104, called_aet: PACS}
"""


def test_the_section_loads_with_defaults(tmp_path):
    (tmp_path / "ecg.yaml").write_text(ECG)
    rules = load_rules(tmp_path)
    assert rules.ecg.stream.devices[0].port == 7100
    assert rules.ecg.stream.jitter_buffer_s == 1.5 and rules.ecg.stream.chunk_s == 1.0
    assert rules.ecg.alarms.pause_s == 4 and rules.ecg.alarms.partial_record_s == 30
    assert rules.ecg.pacs.calling_aet == "DEVSYNC" and rules.ecg.watch.settle_s == 2.0


def test_rules_without_the_section_get_the_defaults():
    rules = load_rules("rules")
    assert rules.ecg.pacs is None and rules.ecg.rwave.lead == "II"


@pytest.mark.parametrize(("bad", "where"), [
    ("    jitter_buffer_s: 1.5\n", "    jitter_buffer_s: 20\n"),
    ("  pacs: {host: pacs.example.org, port: 104, called_aet: PACS}\n",
     "  pacs: {host: pacs.example.org, port: 104, called_aet: A-TITLE-FAR-TOO-LONG}\n"),
])
def test_bad_values_name_the_file_line_and_field(tmp_path, bad, where):
    (tmp_path / "ecg.yaml").write_text(ECG.replace(bad, where))
    with pytest.raises(RuleError) as caught:
        load_rules(tmp_path)
    message = str(caught.value)
    assert "ecg.yaml:" in message and "ecg." in message


def test_the_registry_hook_needs_an_endpoint_per_device(tmp_path):
    from connectors.ecg_stream.connector import EcgStreamConnector
    from hub.rules.devices import DeviceEntry

    (tmp_path / "ecg.yaml").write_text(ECG)
    rules = load_rules(tmp_path)
    built = EcgStreamConnector.from_rules(rules, devices=[DeviceEntry(id="ECGS-01", type="ecg-stream")])
    assert [d.port for d in built.devices] == [7100]
    with pytest.raises(RuleError, match="ECGS-02 have no endpoint in ecg.stream.devices"):
        EcgStreamConnector.from_rules(rules, devices=[DeviceEntry(id="ECGS-02", type="ecg-stream")])
