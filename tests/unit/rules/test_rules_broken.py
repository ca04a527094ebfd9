"""Broken rule files -> the exact error a user sees: `file:line: field.path: message`.

Each fixture in tests/data/rules_broken/ holds one mistake; the table gives the complete
output `devsync rules check` must print for it (every line, nothing else), and the
command must exit 1. Paths are relative to the repository root, as a user would type them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hub.cli import main
from hub.rules.errors import RuleFileError
from hub.rules.devices import Protocol
from hub.rules.load import load_rules
from hub.rules.models import RuleFile
from hub.rules.precedence import PrecedenceRule

ROOT = Path(__file__).resolve().parents[3]
BROKEN = "tests/data/rules_broken"
# Lists other teams may extend are read from the schema; the message format around them is fixed here.
SECTIONS = ", ".join(RuleFile.model_fields)
PRECEDENCE_KEYS = ", ".join(PrecedenceRule.model_fields)
POLICIES = "most-recent-valid, source-rank, highest-fidelity, average, most-severe, manual-review"
DATA_CLASSES = "alarm, vital, trend, waveform, setting, spot-check, status, association"
PROTOCOLS = ", ".join(p.value for p in Protocol)
QUOTE_HINT = 'quote it to keep it as text, e.g. "..."; unquoted digits with a leading 0 are read as octal'

CASES = {
    "bad_enum.yaml": [
        f"{BROKEN}/bad_enum.yaml:5: precedence[0].policy: 'newest' is not one of {POLICIES}",
    ],
    "unknown_key.yaml": [
        f"{BROKEN}/unknown_key.yaml:4: precedence[0].polcy: unknown key 'polcy' (known: {PRECEDENCE_KEYS})",
    ],
    "missing_field.yaml": [
        f"{BROKEN}/missing_field.yaml:3: device_types[0].protocol: required key 'protocol' is missing "
        f"(expected one of {PROTOCOLS})",
    ],
    "wrong_type.yaml": [
        f"{BROKEN}/wrong_type.yaml:4: sync_profiles.vital.reorder_window_s: expected a number, got 'two seconds'",
    ],
    "duplicate_key.yaml": [
        f"{BROKEN}/duplicate_key.yaml:4: runtime.metrics_port: duplicate key 'metrics_port' (first at line 2)",
    ],
    "yaml_syntax.yaml": [
        f"{BROKEN}/yaml_syntax.yaml:5: YAML syntax error: expected <block end>, but found '<block mapping start>'; "
        "check this line's indentation against the lines above (while parsing a block collection started at line 2)",
    ],
    "unknown_device_type.yaml": [
        f"{BROKEN}/unknown_device_type.yaml:6: devices[1].type: unknown device type 'pulse-oxymeter' "
        "(known: multi-parameter-monitor, pulse-oximeter)",
    ],
    "unknown_rank_source.yaml": [
        f"{BROKEN}/unknown_rank_source.yaml:9: precedence[0].rank[0]: unknown source 'art-lin' "
        "(known: arterial-line, nibp)",
    ],
    "unknown_metric.yaml": [
        f"{BROKEN}/unknown_metric.yaml:6: precedence[1].metric: unknown metric 'heartrate' (known: heart-rate, alarm)",
    ],
    "duplicate_device_id": [
        f"{BROKEN}/duplicate_device_id/b_ward.yaml:4: devices[1].id: duplicate id 'PUMP-01' "
        f"(first at {BROKEN}/duplicate_device_id/a_types.yaml:4)",
    ],
    "section_twice": [
        f"{BROKEN}/section_twice/b.yaml:3: association: section already defined at "
        f"{BROKEN}/section_twice/a.yaml:1 (a single section lives in one file)",
    ],
    "profile_key_not_data_class.yaml": [
        f"{BROKEN}/profile_key_not_data_class.yaml:4: sync_profiles.vitals-fast: key 'vitals-fast' "
        f"is not one of {DATA_CLASSES}",
    ],
    "negative_number.yaml": [
        f"{BROKEN}/negative_number.yaml:3: sync_profiles.alarm.latency_budget_s: must be greater than 0, got -0.5",
    ],
    "no_unit_conversion.yaml": [
        f"{BROKEN}/no_unit_conversion.yaml:10: routing[0].units.temperature: no conversion from Cel to 'K' "
        "in units.conversions (possible: Cel, [degF])",
    ],
    "not_utf8.yaml": [
        f"{BROKEN}/not_utf8.yaml:4: not UTF-8 text: byte 0xe4 at column 21 cannot be decoded (save the file as UTF-8)",
    ],
    "top_level_list.yaml": [
        f"{BROKEN}/top_level_list.yaml:1: a rule file is a mapping of sections (known: {SECTIONS}), got a list",
    ],
    "empty_folder": [
        f"{BROKEN}/empty_folder:0: no rule files (*.yaml, *.yml) in this folder",
    ],
    "valid_range_one_number.yaml": [
        f"{BROKEN}/valid_range_one_number.yaml:7: codes[0].valid_range: expected exactly 2 items "
        "[number, number], got 1: [100]",
    ],
    "valid_range_reversed.yaml": [
        f"{BROKEN}/valid_range_reversed.yaml:7: codes[0].valid_range: low 100 is above high 0 (write [low, high])",
    ],
    "unquoted_number_as_text.yaml": [
        f"{BROKEN}/unquoted_number_as_text.yaml:8: codes[0].aliases[0].code: expected text, got 149530 ({QUOTE_HINT})",
    ],
    "unknown_yaml_tag.yaml": [
        f"{BROKEN}/unknown_yaml_tag.yaml:2: runtime.database_url: unknown YAML tag '!env' "
        "(rule files use plain values; remove the tag)",
    ],
    "conversion_key_alias.yaml": [
        f"{BROKEN}/conversion_key_alias.yaml:3: units.conversions[0].from: required key 'from' is missing "
        "(expected text)",
        f"{BROKEN}/conversion_key_alias.yaml:3: units.conversions[0].from_unit: unknown key 'from_unit' "
        "(known: from, to, scale, offset)",
    ],
    "scalar_for_list.yaml": [
        f"{BROKEN}/scalar_for_list.yaml:3: routing[0].data_classes: expected a list of items, each one of "
        f"{DATA_CLASSES}, got 'vital' (write [x] for a single item)",
    ],
    "unknown_sink.yaml": [
        f"{BROKEN}/unknown_sink.yaml:2: routing[0].sink: unknown sink 'ehr' (known: hl7v2, fhir, files, dicom, "
        "pcd04, kafka)",
    ],
    "recursive_alias.yaml": [
        f"{BROKEN}/recursive_alias.yaml:1: x-loop[0]: alias refers to a value that contains it (recursive alias)",
    ],
    "unknown_section.yaml": [
        f"{BROKEN}/unknown_section.yaml:2: precedences: unknown key 'precedences' (known: {SECTIONS})",
    ],
}


@pytest.fixture(autouse=True)
def at_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)


def test_every_fixture_is_in_the_table():
    on_disk = {p.name for p in (ROOT / BROKEN).iterdir()}
    assert on_disk == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_broken_rule_file_gives_the_exact_error(name):
    with pytest.raises(RuleFileError) as caught:
        load_rules(f"{BROKEN}/{name}")
    assert [str(p) for p in caught.value.problems] == CASES[name]


@pytest.mark.parametrize("name", sorted(CASES))
def test_rules_check_prints_the_error_and_exits_1(name, capsys):
    assert main(["rules", "check", f"{BROKEN}/{name}"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == CASES[name] + [f"{len(CASES[name])} problem(s) found"]


def test_a_truly_empty_folder(tmp_path):
    with pytest.raises(RuleFileError) as caught:
        load_rules(tmp_path)
    assert [str(p) for p in caught.value.problems] == [f"{tmp_path}:0: no rule files (*.yaml, *.yml) in this folder"]


def test_a_missing_path():
    with pytest.raises(RuleFileError) as caught:
        load_rules("rules/does-not-exist.yaml")
    assert str(caught.value) == "rules/does-not-exist.yaml:0: no such file or folder"


def _devsync() -> str:
    return str(Path(sys.executable).with_name("devsync"))


def test_installed_devsync_exits_1_on_a_broken_file():
    done = subprocess.run([_devsync(), "rules", "check", f"{BROKEN}/bad_enum.yaml"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 1
    assert done.stderr.splitlines() == CASES["bad_enum.yaml"] + ["1 problem(s) found"]
    assert done.stdout == ""


def test_installed_devsync_passes_the_shipped_rules():
    done = subprocess.run([_devsync(), "rules", "check", "rules/"], capture_output=True, text=True, timeout=60,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("OK: ")
    assert done.stderr == ""
