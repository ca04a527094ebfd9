"""The loader: shipped defaults, merging, line numbers, YAML features, cross-file checks."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from hub.events import DataClass
from hub.rules.errors import RuleFileError
from hub.rules.load import load_rule_sources, load_rules, load_rules_with_origins, rule_files
from hub.rules.precedence import Policy

ROOT = Path(__file__).resolve().parents[3]

TYPES = """\
device_types:
  - {name: monitor, protocol: hl7v2-mllp, sync_mode: push, criticality: high, data_classes: [vital], source: monitor}
  - {name: cuff, protocol: http, sync_mode: push, criticality: medium, data_classes: [vital], source: nibp}
"""
CODES = """\
codes:
  - {metric: heart-rate, display: HR, mdc_code: 147842, mdc_ref: MDC_ECG_CARD_BEAT_RATE, unit: /min}
  - {metric: bp-systolic, display: SBP, mdc_code: 150033, mdc_ref: MDC_PRESS_BLD_SYS, unit: "mm[Hg]"}
"""


def problems_of(*files: tuple[str, str]) -> list[str]:
    with pytest.raises(RuleFileError) as caught:
        load_rule_sources(list(files))
    for problem in caught.value.problems:
        assert problem.file and problem.line >= 0 and problem.message
    return [str(p) for p in caught.value.problems]


def load_text(*files: tuple[str, str]):
    return load_rule_sources(list(files)).rules


# ---------- the shipped defaults ----------


def test_shipped_rules_load_and_cover_the_required_devices_and_metrics():
    rules = load_rules(ROOT / "rules")
    names = {t.name for t in rules.device_types}
    for required in ("multi-parameter-monitor", "pulse-oximeter", "nibp-cuff", "arterial-line", "infusion-pump",
                     "ventilator", "ecg-cart", "holter-recorder"):
        assert required in names
    metrics = {p.metric: p for p in rules.precedence}
    for required in ("heart-rate", "spo2", "bp-systolic", "bp-diastolic", "bp-mean", "respiratory-rate",
                     "temperature"):
        assert required in metrics
    assert metrics["alarm"].policy is Policy.MOST_SEVERE
    codes = {c.metric: c for c in rules.codes}
    assert (codes["spo2"].mdc_code, codes["spo2"].loinc) == (150456, "59408-5")
    assert (codes["heart-rate"].mdc_code, codes["heart-rate"].loinc) == (147842, "8867-4")
    pairs = {(c.from_unit, c.to_unit) for c in rules.units.conversions}
    assert {("kPa", "mm[Hg]"), ("mm[Hg]", "kPa"), ("[degF]", "Cel"), ("Cel", "[degF]")} <= pairs
    assert len(rules.devices) >= 8


def test_origins_point_at_the_item_in_its_file():
    loaded = load_rules_with_origins(ROOT / "rules")
    index = next(i for i, p in enumerate(loaded.rules.precedence) if p.metric == "bp-systolic")
    file, line = loaded.origins[("precedence", index)]
    assert file.endswith("precedence.yaml")
    assert (ROOT / "rules/precedence.yaml").read_text().splitlines()[line - 1].strip() == "- metric: bp-systolic"
    file, line = loaded.where.locate(("precedence", index, "rank", 2))
    assert (ROOT / "rules/precedence.yaml").read_text().splitlines()[line - 1].strip().startswith("rank:")


# ---------- merging ----------


def test_lists_concatenate_and_maps_merge_across_files():
    rules = load_text(
        ("a.yaml", TYPES + "sync_profiles:\n  vital: {latency_budget_s: 10}\n"),
        ("b.yaml", "devices:\n  - {id: M1, type: monitor}\nsync_profiles:\n  alarm: {latency_budget_s: 0.5}\n"),
        ("c.yaml", "devices:\n  - {id: C1, type: cuff}\n"),
    )
    assert [d.id for d in rules.devices] == ["M1", "C1"]
    assert set(rules.sync_profiles) == {DataClass.VITAL, DataClass.ALARM}


def test_a_map_key_defined_in_two_files():
    assert problems_of(
        ("a.yaml", "sync_profiles:\n  vital: {latency_budget_s: 10}\n"),
        ("b.yaml", "version: 1\nsync_profiles:\n  vital:\n    latency_budget_s: 5\n"),
    ) == ["b.yaml:3: sync_profiles.vital: already defined at a.yaml:2 (define each key once)"]


def test_every_file_is_reported_in_one_run_sorted_by_file_and_line():
    assert problems_of(
        ("b.yaml", "runtime:\n  queue_size: 0\n  metrics_port: http\n"),
        ("a.yaml", "edge:\n  gateway_id: [1]\n"),
    ) == [
        "a.yaml:2: edge.gateway_id: expected text, got a list [1]",
        "b.yaml:2: runtime.queue_size: must be at least 1, got 0",
        "b.yaml:3: runtime.metrics_port: expected a whole number, got 'http'",
    ]


def test_folder_reading_skips_hidden_files_and_rule_tests_but_enters_subfolders(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / ".git").mkdir()
    for name in ("a.yaml", "sub/b.yml", "a_test.yaml", ".hidden.yaml", ".git/x.yaml", "notes.txt"):
        (tmp_path / name).write_text("version: 1\n")
    assert [p.relative_to(tmp_path).as_posix() for p in rule_files(tmp_path)] == ["a.yaml", "sub/b.yml"]


def test_only_regular_files_are_read(tmp_path):
    (tmp_path / "dir.yaml").mkdir()
    (tmp_path / "dangling.yaml").symlink_to(tmp_path / "nowhere.yaml")
    (tmp_path / "real.yaml").write_text(TYPES)
    assert [t.name for t in load_rules(tmp_path).device_types] == ["monitor", "cuff"]


# ---------- line numbers ----------


def test_dict_key_errors_point_at_the_key_not_the_value_below():
    assert problems_of(("p.yaml", textwrap.dedent("""\
        sync_profiles:
          vital:
            latency_budget_s: 10
          fast:
            latency_budget_s: 1
        """))) == ["p.yaml:4: sync_profiles.fast: key 'fast' is not one of "
                  "alarm, vital, trend, waveform, setting, spot-check, status, association"]


def test_unknown_key_with_a_block_value_points_at_the_key():
    problems = problems_of(("r.yaml", textwrap.dedent("""\
        association:
          static_binding:
            - {location: BED1, patient_id: P1}
        """)))
    assert problems == ["r.yaml:2: association.static_binding: unknown key 'static_binding' "
                        "(known: encounter_source, static_bindings, park_limit_s, park_max_events)"]


def test_errors_inside_nested_lists_name_the_item_and_its_line():
    assert problems_of(("c.yaml", textwrap.dedent("""\
        codes:
          - metric: heart-rate
            display: HR
            mdc_code: 147842
            mdc_ref: MDC_ECG_CARD_BEAT_RATE
            unit: /min
            aliases:
              - {system: MDC, code: "149530"}
              - {code: HR}
        device_types:
          - name: m
            protocol: mqtt
            sync_mode: push
            criticality: high
            source: m
            data_classes:
              - vital
              - vitals
        """))) == [
        "c.yaml:9: codes[0].aliases[1].system: required key 'system' is missing (expected text)",
        "c.yaml:18: device_types[0].data_classes[1]: 'vitals' is not one of "
        "alarm, vital, trend, waveform, setting, spot-check, status, association",
    ]


def test_cross_reference_errors_point_at_the_exact_list_item():
    assert problems_of(("a.yaml", TYPES + CODES), ("b.yaml", textwrap.dedent("""\
        precedence:
          - metric: bp-systolic
            policy: source-rank
            rank:
              - monitor
              - cuff
        """))) == ["b.yaml:6: precedence[0].rank[1]: unknown source 'cuff' (known: monitor, nibp)"]


# ---------- YAML features and hostile input ----------


def test_merge_keys_and_x_anchors():
    rules = load_text(("w.yaml", TYPES + textwrap.dedent("""\
        x-philips: &philips {type: monitor, manufacturer: Philips, model: MX800}
        devices:
          - {<<: *philips, id: MON-01, location: BED1}
          - <<: *philips
            id: MON-02
            model: MX750
        """)))
    assert [(d.id, d.type, d.model, d.manufacturer) for d in rules.devices] == [
        ("MON-01", "monitor", "MX800", "Philips"), ("MON-02", "monitor", "MX750", "Philips")]


def test_an_error_inside_merged_keys_points_at_the_anchor():
    assert problems_of(("w.yaml", TYPES + textwrap.dedent("""\
        x-base: &base
          type: monitor
          colour: blue
        devices:
          - <<: *base
            id: MON-01
        """))) == ["w.yaml:6: devices[0].colour: unknown key 'colour' "
                  "(known: id, type, location, serial, eui64, model, manufacturer, gateway, connector)"]


def test_utf8_with_bom_and_non_ascii_text_is_fine():
    raw = "\ufeffdevices:\n  - {id: M1, type: monitor, manufacturer: Dräger}\n".encode()
    rules = load_rule_sources([("a.yaml", TYPES), ("b.yaml", raw)]).rules
    assert rules.devices[0].manufacturer == "Dräger"


@pytest.mark.parametrize(("text", "expected"), [
    ("runtime:\n  database_url: 2001-13-01\n",
     "f.yaml:2: runtime.database_url: cannot read value '2001-13-01': month must be in 1..12 "
     "(quote it to keep it as text)"),
    ("? [a, b]\n: 1\n", "f.yaml:1: a key must be a plain name, got a list"),
    ("a: 1\n---\nb: 2\n", "f.yaml:2: YAML syntax error: but found another document "
                          "(expected a single document in the stream started at line 1)"),
    ("runtime:\n  database_url: a\x07b\n",
     "f.yaml:2: character '\\x07' is not allowed in YAML text (special characters are not allowed)"),
    ("runtime:\n\tqueue_size: 1\n", "f.yaml:2: YAML syntax error: found character '\\t' that cannot start any "
                                    "token; indent with spaces, not tabs (while scanning for the next token "
                                    "started at line 2)"),
    ("devices: *nowhere\n", "f.yaml:1: YAML syntax error: found undefined alias 'nowhere'; define the anchor "
                            "(&name) before using *name"),
    ("x-a: " + "[" * 150 + "]" * 150 + "\n", "f.yaml:1: more than 100 nested [ or {"),
    ("edge: {gateway_id: !!binary aGVsbG8=, durability: full}\nversion: 2\n",
     "f.yaml:2: version: must be at most 1, got 2"),
])
def test_hostile_yaml_gives_one_clear_problem(text, expected):
    assert problems_of(("f.yaml", text)) == [expected]


def test_an_alias_bomb_is_refused_without_expanding_it():
    text = 'x-a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        text += f"x-{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]\n"
    assert problems_of(("bomb.yaml", text)) == [
        "bomb.yaml:1: more than 500000 values after expanding aliases: an alias bomb or a runaway anchor"]


def test_an_empty_file_is_an_empty_rule_file():
    assert load_text(("a.yaml", ""), ("b.yaml", "# only a comment\n")).devices == []
