"""Connector registry: lazy resolution, clear errors, one connector per listener / device group."""

from __future__ import annotations

import pytest

from connectors import registry
from connectors.hybrid import HybridConnector
from connectors.mqtt import MqttConnector
from connectors.polling import PollingConnector
from connectors.registry import ConnectorNotAvailableError, build_connectors, resolve_connector
from connectors.sdc import SdcConnector
from hub.errors import RuleError
from hub.rules.devices import Protocol


def dtype(name, protocol, **connector):
    return {"name": name, "protocol": protocol, "sync_mode": "push", "criticality": "high",
            "data_classes": ["vital"], "source": name, "connector": connector}


@pytest.fixture
def device_rules(rules_factory):
    return rules_factory(
        [dtype("pump", "poll-tcp", port=7001), dtype("spot", "poll-http"), dtype("vent", "hybrid-tcp", port=7101),
         dtype("sdc-mon", "sdc"), dtype("oxi", "mqtt")],
        [{"id": "P1", "type": "pump"}, {"id": "P2", "type": "pump", "connector": {"port": 7002}},
         {"id": "S1", "type": "spot", "connector": {"url": "http://127.0.0.1:9/status"}},
         {"id": "V1", "type": "vent"}, {"id": "M1", "type": "sdc-mon", "connector": {"xaddr": "http://127.0.0.1:9/x"}},
         {"id": "O1", "type": "oxi"}],
    )


def test_every_device_protocol_of_the_inventory_is_registered_or_named():
    for protocol in (Protocol.MQTT, Protocol.POLL_TCP, Protocol.POLL_HTTP, Protocol.HYBRID_TCP, Protocol.SDC,
                     Protocol.HL7V2_MLLP, Protocol.HTTP):
        assert ":" in registry.CONNECTORS[protocol.value]
    assert resolve_connector("poll-http") is PollingConnector


def test_unknown_protocol_and_broken_target_fail_with_a_clear_error(monkeypatch):
    with pytest.raises(ConnectorNotAvailableError, match=r"no connector registered for protocol 'carrier-pigeon' "
                                                          r"\(known: .*mqtt"):
        resolve_connector("carrier-pigeon")
    monkeypatch.setitem(registry.CONNECTORS, "sdc", "connectors.not_there:Nope")
    with pytest.raises(ConnectorNotAvailableError, match=r"'sdc' \(connectors.not_there:Nope\) cannot be imported"):
        resolve_connector("sdc")
    monkeypatch.setitem(registry.CONNECTORS, "sdc", "connectors.polling:NoSuchClass")
    with pytest.raises(ConnectorNotAvailableError, match="has no class NoSuchClass"):
        resolve_connector("sdc")


def test_build_connectors_groups_devices_and_applies_overrides(device_rules):
    built = build_connectors(device_rules, overrides={"mqtt": {"port": 18830}})
    kinds = {type(c): c for c in built}
    assert set(kinds) >= {MqttConnector, PollingConnector, HybridConnector, SdcConnector}
    polling = kinds[PollingConnector]
    assert sorted(p.state.device.id for p in polling.pollers) == ["P1", "P2", "S1"]
    assert [p.transport.port for p in polling.pollers if hasattr(p.transport, "port")] == [7001, 7002]
    assert kinds[MqttConnector].settings.port == 18830
    assert [d.state.device.id for d in kinds[HybridConnector].devices] == ["V1"]
    assert [d.settings.xaddr for d in kinds[SdcConnector].devices] == ["http://127.0.0.1:9/x"]


def test_build_connectors_rejects_unknown_override_and_bad_device_settings(device_rules, rules_factory):
    with pytest.raises(RuleError, match=r"unknown section\(s\) \['mlp'\]"):
        build_connectors(device_rules, overrides={"mlp": {"port": 1}})
    bad = rules_factory([dtype("vent", "hybrid-tcp", port=7101)],
                        [{"id": "V9", "type": "vent", "connector": {"baseline_interval_s": -1}}])
    with pytest.raises(RuleError, match=r"devices\[V9\]\.connector\.baseline_interval_s.*greater than 0"):
        build_connectors(bad)


def test_protocol_without_from_rules_is_a_clear_error(rules_factory, monkeypatch):
    monkeypatch.setitem(registry.CONNECTORS, "ecg-stream", "connectors.base:Connector")
    rules = rules_factory([dtype("ecg", "ecg-stream")], [{"id": "E1", "type": "ecg"}])
    with pytest.raises(ConnectorNotAvailableError, match=r"'ecg-stream'.*has no from_rules"):
        build_connectors(rules)


def test_unregistered_protocol_is_logged_not_silently_connected(rules_factory, caplog):
    rules = rules_factory([dtype("cart", "ecg-file")], [{"id": "C1", "type": "cart"}])
    with caplog.at_level("WARNING", logger="devsync.connectors"):
        assert build_connectors(rules) == []
    assert "protocol=ecg-file" in caplog.text and "devices=C1" in caplog.text


def test_settings_errors_name_the_rule_file_and_line(tmp_path):
    from hub.rules.load import load_rules_with_origins

    (tmp_path / "devices.yaml").write_text(
        "version: 1\n"
        "device_types:\n"
        "  - name: vent\n"
        "    protocol: hybrid-tcp\n"
        "    sync_mode: hybrid\n"
        "    criticality: high\n"
        "    data_classes: [vital]\n"
        "    source: vent\n"
        "devices:\n"
        "  - {id: V1, type: vent, connector: {port: 7101}}\n"
        "  - {id: V2, type: vent, connector: {port: 7102, silence_s: 3}}\n"
    )
    loaded = load_rules_with_origins(tmp_path)
    with pytest.raises(RuleError, match=r"devices\.yaml:11, type at .*devices\.yaml:3: HybridSettings for device V2: "
                                        r"devices\[V2\]\.connector\.silence_s"):
        build_connectors(loaded.rules, origins=loaded.origins)
