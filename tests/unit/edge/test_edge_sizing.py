"""Buffer sizing from the device mix, the `devsync edge size` command and the edge rules section."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from edge_buffer.gateway import gateway_rules
from edge_buffer.sizing import device_rate, select_devices, size_buffer
from hub.cli import main
from hub.events import DataClass
from hub.rules.errors import RuleFileError
from hub.rules.load import load_rules

RULES = Path(__file__).resolve().parents[3] / "rules"

EDGE_YAML = """\
version: 1
edge:
  gateway_id: edge-icu1
  quota_bytes: 1073741824
  device_type_rates:
    multi-parameter-monitor: {vital: 3.0, waveform: 4.0}
    nibp-cuff: {vital: 0.02}
"""


@pytest.fixture
def unit_rules(tmp_path) -> Path:
    """The shipped rules plus an edge section, with beds 1-3 behind gateway edge-icu1."""
    folder = tmp_path / "rules"
    shutil.copytree(RULES, folder)
    ward = folder / "ward.yaml"
    lines = []
    for line in ward.read_text().splitlines():
        if any(f"location: ICU1-BED0{b}" in line for b in (1, 2, 3)):
            line = line.replace("location:", "gateway: edge-icu1, location:")
        lines.append(line)
    ward.write_text("\n".join(lines) + "\n")
    (folder / "edge.yaml").write_text(EDGE_YAML)
    return folder


def test_rate_resolution_order(unit_rules):
    rules = load_rules(unit_rules)
    assert device_rate(rules, "multi-parameter-monitor", DataClass.VITAL) == (3.0, "edge.device_type_rates")
    rate, source = device_rate(rules, "infusion-pump", DataClass.SETTING)  # polled, profile poll every 10 s
    assert rate == pytest.approx(rules.edge.events_per_poll / 10) and source == "poll every 10 s"
    assert device_rate(rules, "pulse-oximeter", DataClass.VITAL) == (rules.edge.sizing_rates[DataClass.VITAL],
                                                                      "edge.sizing_rates")


def test_size_of_the_gateway_devices(unit_rules):
    rules = load_rules(unit_rules)
    devices = select_devices(rules, all_devices=False)
    assert {d.location for d in devices} == {"ICU1-BED01", "ICU1-BED02", "ICU1-BED03"}
    sizing = size_buffer(rules, devices, hours=1)
    monitors = [ln for ln in sizing.lines if ln.device_type == "multi-parameter-monitor" and ln.data_class is DataClass.VITAL]
    assert monitors[0].devices == 3 and monitors[0].events == pytest.approx(3 * 3.0 * 3600)
    assert sizing.events == pytest.approx(sum(ln.rate_per_device * ln.devices for ln in sizing.lines) * 3600)
    expected_payload = sum(ln.events * rules.edge.event_bytes[ln.data_class] for ln in sizing.lines)
    assert sizing.payload_bytes == pytest.approx(expected_payload)
    assert sizing.disk_bytes == pytest.approx((expected_payload + sizing.events * rules.edge.row_overhead_bytes) * 1.25)


def test_beds_scale_the_per_bed_mix_and_not_roaming_devices(unit_rules):
    rules = load_rules(unit_rules)
    devices = select_devices(rules, all_devices=True)  # 9 beds + ECG cart + Holter (no bed)
    sizing = size_buffer(rules, devices, hours=72, beds=30)
    count = {ln.device_type: ln.devices for ln in sizing.lines}
    assert count["multi-parameter-monitor"] == pytest.approx(30)
    assert count["ecg-cart"] == 1 and count["holter-recorder"] == 1
    assert size_buffer(rules, devices, hours=144, beds=30).events == pytest.approx(2 * sizing.events)


def test_size_command_prints_the_worst_case(unit_rules, capsys):
    assert main(["edge", "size", "--rules", str(unit_rules), "--hours", "72"]) == 0
    out = capsys.readouterr().out
    assert "gateway edge-icu1" in out and "worst case over 72 h" in out and "disk needed" in out
    assert "covers" in out and "suggested edge.quota_bytes" in out


def test_size_command_without_gateway_devices_explains(tmp_path, capsys):
    assert main(["edge", "size", "--rules", str(RULES), "--hours", "72"]) == 1
    assert "--all-devices" in capsys.readouterr().err


def test_edge_section_errors_name_file_line_and_field(tmp_path):
    bad = tmp_path / "edge.yaml"
    bad.write_text("version: 1\nedge:\n  gateway_id: x\n  shed_order: [trend, alarm]\n  durability: off\n")
    with pytest.raises(RuleFileError) as info:
        load_rules(bad)
    text = "\n".join(str(p) for p in info.value.problems)
    assert "edge.yaml:4" in text and "edge.shed_order" in text and "never be shed" in text
    assert "edge.durability" in text


def test_gateway_rules_keep_only_this_gateways_devices_and_listeners(unit_rules):
    rules = load_rules(unit_rules)
    narrowed = gateway_rules(rules)
    beds = {"ICU1-BED01", "ICU1-BED02", "ICU1-BED03"}
    assert [d.id for d in narrowed.devices] == [d.id for d in rules.devices if d.location in beds]
    assert {d.gateway for d in narrowed.devices} == {"edge-icu1"}


def test_size_command_rejects_rates_for_unknown_device_types(unit_rules, capsys):
    (unit_rules / "edge.yaml").write_text(EDGE_YAML.replace("nibp-cuff:", "nibp-cuf:"))
    assert main(["edge", "size", "--rules", str(unit_rules), "--hours", "72"]) == 1
    err = capsys.readouterr().err
    assert "edge.device_type_rates: unknown device type(s) nibp-cuf" in err and "nibp-cuff" in err
