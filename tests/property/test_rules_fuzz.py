"""Whatever text, bytes or structure a rule file holds, the loader either loads it or raises
RuleFileError whose every problem names a file, a line >= 0 and a message: never another
exception, never a hang."""

from __future__ import annotations

import typing
from enum import Enum
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.rules.errors import RuleFileError
from hub.rules.load import load_rule_sources
from hub.rules.messages import is_model, unwrap
from hub.rules.models import RuleFile, RuleSet

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "rules").glob("*.yaml"))
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                         HealthCheck.data_too_large])


def _vocabulary() -> tuple[list[str], list[str]]:
    """Every key and enum value of the schema, so random input reaches deep into the models."""
    keys: list[str] = []
    values: list[str] = []
    todo: list[typing.Any] = [RuleFile]
    seen: set[typing.Any] = set()
    while todo:
        tp = todo.pop()
        for cand in unwrap(tp):
            if cand in seen:
                continue
            seen.add(cand)
            if is_model(cand):
                for name, info in cand.model_fields.items():
                    keys.append(info.alias or name)
                    todo.append(info.annotation)
            elif isinstance(cand, type) and issubclass(cand, Enum):
                values += [str(m.value) for m in cand]
            todo += list(typing.get_args(cand))
    return sorted(set(keys)), sorted(set(values))


KEYS, ENUM_VALUES = _vocabulary()
TOKENS = KEYS + ENUM_VALUES + [
    ":", ": ", "- ", "  ", "    ", "\n", "\n  ", "\n- ", "{", "}", "[", "]", ",", "'", '"', "#", "---", "...",
    "? ", "|", ">", "&a ", "*a", "<<: *a", "!!str ", "!!int ", "!!binary ", "!foo ", "%YAML 1.1\n", "\t", "\\",
    "null", "~", "yes", "no", "on", "true", "1", "-1", "0", "0.5", "1e400", ".inf", ".nan", "0x1F", "0o17", "012",
    "2001-13-01", "2020-01-01T00:00:00Z", "x-", "vital", "monitor", "heart-rate", "mm[Hg]", "é", "\u2028", "\x00",
    "\x85", "\ufeff", "\U0001F600",
]
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12),
                    st.sampled_from(ENUM_VALUES))
STRUCTURES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=6)), inner, max_size=5)),
    max_leaves=16,
)


def check(sources: list[tuple[str, bytes | str]]) -> None:
    try:
        loaded = load_rule_sources(sources)
    except RuleFileError as exc:
        assert exc.problems
        names = {name for name, _ in sources}
        for problem in exc.problems:
            assert problem.file in names
            assert isinstance(problem.line, int) and problem.line >= 0
            assert isinstance(problem.message, str) and problem.message.strip()
            assert str(problem).startswith(f"{problem.file}:{problem.line}: ")
    else:
        assert isinstance(loaded.rules, RuleSet)


@FUZZ
@given(st.text(alphabet=st.sampled_from(list("abc-_:[]{},#&*!|>'\"?%@` \n\t0123456789.~é\x07")), max_size=200))
def test_random_characters(text):
    check([("f.yaml", text)])


@FUZZ
@given(st.lists(st.sampled_from(TOKENS), max_size=40))
def test_random_yaml_tokens(tokens):
    check([("f.yaml", "".join(tokens))])


@settings(FUZZ, max_examples=80)
@given(st.dictionaries(st.sampled_from(KEYS + ["x-anchors", "nope"]), STRUCTURES, max_size=4), STRUCTURES)
def test_random_structures(top, other):
    check([("a.yaml", yaml.safe_dump(top, allow_unicode=True)), ("b.yaml", yaml.safe_dump(other))])


@settings(FUZZ, max_examples=60)  # each example loads every shipped file
@given(st.sampled_from(SHIPPED), st.data())
def test_mutated_shipped_rules(path, data):
    text = path.read_text(encoding="utf-8")
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(text)))
        edit = data.draw(st.sampled_from(["delete", "insert", "duplicate-line"]))
        if edit == "delete":
            text = text[:at] + text[at + data.draw(st.integers(1, 20)):]
        elif edit == "insert":
            text = text[:at] + data.draw(st.sampled_from(TOKENS)) + text[at:]
        else:
            lines = text.splitlines(keepends=True) or [""]
            i = at % len(lines)
            text = "".join(lines[: i + 1] + lines[i:])
    others = [(str(p), p.read_bytes()) for p in SHIPPED if p != path]
    check(others + [(str(path), text)])


@FUZZ
@given(st.binary(max_size=120))
def test_random_bytes(raw):
    check([("f.yaml", raw)])
