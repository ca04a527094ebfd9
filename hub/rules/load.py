"""YAML rule files -> validated RuleSet, with file:line errors.

Steps: read each file (the only I/O, in `load_rules_with_origins`) -> parse YAML keeping
the line of every key (yaml_lines) -> validate it as a RuleFile (messages turns pydantic
errors into `file:line: field.path: message`) -> merge the files (lists concatenated,
maps merged, single sections once) -> check references between sections (consistency).
Every problem is collected, so one `devsync rules check` run shows them all; later steps
run only when the earlier ones found nothing (so one mistake is not reported ten times).
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from hub.rules.consistency import KNOWN_SINKS, check_rules
from hub.rules.errors import RuleFileError, RuleProblem
from hub.rules.messages import Loc, format_loc, line_of, validation_problems
from hub.rules.models import LIST_SECTIONS, MAP_SECTIONS, SINGLE_SECTIONS, RuleFile, RuleSet
from hub.rules.yaml_lines import decode_rule_bytes, parse_yaml

__all__ = ["KNOWN_SINKS", "LoadedRules", "Origins", "format_loc", "line_of", "load_rule_sources", "load_rules",
           "load_rules_with_origins", "parse_rule_file", "rule_files"]

EXTENSION_PREFIX = "x-"  # top-level keys starting with this are ignored (a place for YAML anchors)
RULE_SUFFIXES = (".yaml", ".yml")
TEST_SUFFIXES = ("_test.yaml", "_test.yml")  # rule tests that sit beside the rules


class Origins:
    """Where every merged item came from: loc in the RuleSet -> (file, line)."""

    def __init__(self) -> None:
        self.lines: dict[str, dict[Loc, int]] = {}  # file -> lines of that file
        self.items: dict[tuple[str, int], tuple[str, int]] = {}  # (list section, merged index) -> (file, index)
        self.keys: dict[tuple[str, str], str] = {}  # (map section, key) -> file
        self.sections: dict[str, str] = {}  # single section -> file

    def locate(self, loc: Loc) -> tuple[str, int]:
        """(file, line) of a location in the merged RuleSet, e.g. ("precedence", 3, "rank", 1)."""
        file, line, _ = self.resolve(loc)
        return file, line

    def resolve(self, loc: Loc) -> tuple[str, int, Loc]:
        """(file, line, loc within that file): merged list indexes become the file's own indexes."""
        section, rest = str(loc[0]), loc[1:]
        if section in LIST_SECTIONS and rest and isinstance(rest[0], int) and (section, rest[0]) in self.items:
            file, index = self.items[(section, rest[0])]
            local = (section, index) + rest[1:]
            return file, line_of(local, self.lines[file]), local
        if section in MAP_SECTIONS and rest and (section, str(rest[0])) in self.keys:
            file = self.keys[(section, str(rest[0]))]
            return file, line_of(loc, self.lines[file]), loc
        if section in self.sections:
            file = self.sections[section]
            return file, line_of(loc, self.lines[file]), loc
        return "<rules>", 0, loc


class LoadedRules(typing.NamedTuple):
    rules: RuleSet
    origins: dict[tuple[str, int], tuple[str, int]]  # (list section, merged index) -> (file, line)
    where: Origins


def rule_files(path: Path) -> list[Path]:
    """The rule files of a folder (recursively, sorted; hidden files and *_test.yaml skipped), or the file itself."""
    if not path.is_dir():
        return [path]
    found = []
    for p in path.rglob("*"):
        rel = p.relative_to(path).parts
        if p.suffix in RULE_SUFFIXES and not p.name.endswith(TEST_SUFFIXES) and not any(
            part.startswith(".") for part in rel
        ) and p.is_file():
            found.append(p)
    return sorted(found)


def load_rules(path: str | Path) -> RuleSet:
    """Load and validate a rule file or folder; raises RuleFileError listing every problem."""
    return load_rules_with_origins(path).rules


def load_rules_with_origins(path: str | Path) -> LoadedRules:
    """Read the files (the only I/O here), then `load_rule_sources`."""
    path = Path(path)
    if not path.exists():
        raise RuleFileError([RuleProblem(str(path), 0, "", "no such file or folder")])
    files = rule_files(path)
    if not files:
        raise RuleFileError([RuleProblem(str(path), 0, "", "no rule files (*.yaml, *.yml) in this folder")])
    sources: list[tuple[str, bytes]] = []
    problems: list[RuleProblem] = []
    for file in files:
        try:
            sources.append((str(file), file.read_bytes()))
        except OSError as exc:
            problems.append(RuleProblem(str(file), 0, "", f"cannot read the file: {exc.strerror or exc}"))
    if problems:
        raise RuleFileError(problems)
    return load_rule_sources(sources)


def load_rule_sources(sources: list[tuple[str, bytes | str]]) -> LoadedRules:
    """Pure core: (file name, content) pairs -> LoadedRules, or RuleFileError with every problem."""
    problems: list[RuleProblem] = []
    parsed: list[tuple[str, RuleFile, dict[Loc, int]]] = []
    for name, raw in sources:
        rule_file, lines, file_problems = parse_rule_file(name, raw)
        problems += file_problems
        if rule_file is not None and not file_problems:
            parsed.append((name, rule_file, lines))
    if problems:
        raise RuleFileError(_sorted(problems))
    merged, where = merge_rule_files(parsed, problems)
    if problems:
        raise RuleFileError(_sorted(problems))
    rules = RuleSet.model_construct(**{**_defaults(), **merged})
    problems += check_rules(rules, where.resolve)
    if problems:
        raise RuleFileError(_sorted(problems))
    origins = {key: where.locate(key) for key in where.items}
    return LoadedRules(rules, origins, where)


def parse_rule_file(name: str, raw: bytes | str) -> tuple[RuleFile | None, dict[Loc, int], list[RuleProblem]]:
    """One file's content -> (RuleFile or None, lines, problems)."""
    if isinstance(raw, bytes):
        text, problems = decode_rule_bytes(raw, name)
        if text is None:
            return None, {}, problems
    else:
        text = raw
    doc = parse_yaml(text, name)
    if doc.data is None:
        return None, doc.lines, doc.problems
    if not isinstance(doc.data, dict):
        sections = ", ".join(RuleFile.model_fields)
        kind = "a list" if isinstance(doc.data, list) else f"a single value {doc.data!r}"
        problem = RuleProblem(name, doc.lines.get((), 1), "",
                              f"a rule file is a mapping of sections (known: {sections}), got {kind}")
        return None, doc.lines, doc.problems + [problem]
    data = {k: v for k, v in doc.data.items() if not k.startswith(EXTENSION_PREFIX)}
    try:
        return RuleFile.model_validate(data), doc.lines, doc.problems
    except ValidationError as exc:
        return None, doc.lines, doc.problems + validation_problems(exc, RuleFile, name, doc.lines)


def merge_rule_files(parsed: list[tuple[str, RuleFile, dict[Loc, int]]],
                     problems: list[RuleProblem]) -> tuple[dict[str, Any], Origins]:
    """Lists are concatenated, map keys and single sections may be defined once (else a problem)."""
    merged: dict[str, Any] = {}
    where = Origins()
    for name, rule_file, lines in parsed:
        where.lines[name] = lines
        for section in LIST_SECTIONS:
            for i, item in enumerate(getattr(rule_file, section, None) or []):
                where.items[(section, len(merged.setdefault(section, [])))] = (name, i)
                merged[section].append(item)
        for section in MAP_SECTIONS:
            for key, value in (getattr(rule_file, section, None) or {}).items():
                loc = (section, str(key))
                if loc in where.keys:
                    first = where.locate(loc)
                    problems.append(RuleProblem(name, line_of(loc, lines), format_loc(loc),
                                                f"already defined at {first[0]}:{first[1]} (define each key once)"))
                    continue
                where.keys[loc] = name
                merged.setdefault(section, {})[key] = value
        for section in SINGLE_SECTIONS:
            value = getattr(rule_file, section, None)
            if value is None:
                continue
            if section in where.sections:
                first = where.locate((section,))
                problems.append(RuleProblem(name, line_of((section,), lines), section,
                                            f"section already defined at {first[0]}:{first[1]} "
                                            "(a single section lives in one file)"))
                continue
            where.sections[section] = name
            merged[section] = value
    return merged, where


def _defaults() -> dict[str, Any]:
    return {name: field.get_default(call_default_factory=True) for name, field in RuleSet.model_fields.items()}


def _sorted(problems: list[RuleProblem]) -> list[RuleProblem]:
    return sorted(problems, key=lambda p: (p.file, p.line))
