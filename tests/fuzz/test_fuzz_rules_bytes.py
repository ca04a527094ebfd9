"""Fuzz the rule-file loader (hub/rules/load.py: load_rule_sources) with byte-mutated shipped rule files.

tests/property/test_rules_fuzz.py already drives the loader with schema-shaped structures; this target
adds raw byte damage (encoding, YAML syntax, truncation, duplicated blocks) to the real rules/*.yaml.
Property: LoadedRules or RuleFileError whose every problem names the file, a line >= 0 and a message.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fuzz_mutations import EXAMPLES, assert_clear, budget, mutated
from hypothesis import given
from hypothesis import strategies as st

from hub.rules.errors import RuleFileError
from hub.rules.load import load_rule_sources

pytestmark = pytest.mark.timeout(1800)
ROOT = Path(__file__).resolve().parents[2]
SHIPPED = {p.name: p.read_bytes() for p in sorted((ROOT / "rules").glob("*.yaml"))}


@budget(max(1, EXAMPLES // 5))
@given(name=st.sampled_from(sorted(SHIPPED)), raw=st.data())
def test_mutated_rule_file_loads_or_names_file_and_line(name, raw):
    damaged = raw.draw(mutated([SHIPPED[name]], max_mutations=4))
    sources = [(n, damaged if n == name else content) for n, content in SHIPPED.items()]
    try:
        load_rule_sources(sources)
    except RuleFileError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.file in SHIPPED, problem
            assert problem.line >= 0
            assert_clear(problem.message)
