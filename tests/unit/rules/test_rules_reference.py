"""The rule-file reference is generated from the models and the committed copy is current."""

from __future__ import annotations

from pathlib import Path

from hub.cli import main
from hub.rules.messages import is_model, unwrap
from hub.rules.models import RuleFile
from hub.rules.reference import build_reference

ROOT = Path(__file__).resolve().parents[3]
COMMITTED = ROOT / "docs" / "rules-reference.md"
REGENERATE = "devsync rules docs --out docs/rules-reference.md"


def test_committed_reference_equals_a_fresh_generation():
    assert COMMITTED.read_text(encoding="utf-8") == build_reference(), (
        f"docs/rules-reference.md is stale: a rule model changed; run `{REGENERATE}`")


def test_rules_docs_command_writes_the_reference(tmp_path, capsys):
    out = tmp_path / "ref.md"
    assert main(["rules", "docs", "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == build_reference()
    assert main(["rules", "docs"]) == 0
    assert capsys.readouterr().out.endswith(build_reference())


def _models(tp, seen):
    import typing

    for cand in unwrap(tp):
        if is_model(cand) and cand not in seen:
            seen.append(cand)
            for info in cand.model_fields.values():
                _models(info.annotation, seen)
        for arg in typing.get_args(cand):
            _models(arg, seen)
    return seen


def test_every_section_and_every_field_is_documented_with_its_description():
    text = build_reference()
    for section, info in RuleFile.model_fields.items():
        assert f"\n## {section}\n" in text
        assert info.description and info.description in text
    models = _models(RuleFile, [])
    assert len(models) > 10
    for model in models:
        if model is RuleFile:
            continue
        assert f"\n### {model.__name__}\n" in text
        for name, info in model.model_fields.items():
            row = next((line for line in text.splitlines() if line.startswith(f"| `{info.alias or name}` |")
                        and (info.description or "").replace("|", "\\|") in line), None)
            assert row is not None, f"{model.__name__}.{name} is not in the reference"


def test_allowed_values_defaults_and_bounds_are_shown():
    text = build_reference()
    row = next(line for line in text.splitlines() if line.startswith("| `policy` |"))
    assert "`most-recent-valid`" in row and "`manual-review`" in row and "required" in row
    row = next(line for line in text.splitlines() if line.startswith("| `latency_budget_s` |"))
    assert "| > 0 |" in row
    row = next(line for line in text.splitlines() if line.startswith("| `from` |"))
    assert "required" in row  # the YAML name (alias), not the Python field name from_unit
    assert "Keys: one of `alarm`, `vital`" in text  # sync_profiles keys are data classes
