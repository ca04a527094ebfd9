"""YAML rule files -> validated RuleSet, with file:line errors.

Steps: read YAML keeping every node's line -> validate each file as a RuleFile ->
merge the files -> check cross references (device types, sources, metrics, sinks).
Every problem is collected, so one run of `devsync rules check` shows them all.
"""

from __future__ import annotations

import types
import typing
from enum import Enum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from hub.rules.errors import RuleFileError, RuleProblem
from hub.rules.models import LIST_SECTIONS, MAP_SECTIONS, SINGLE_SECTIONS, RuleFile, RuleSet

Loc = tuple[str | int, ...]
KNOWN_SINKS = ("hl7v2", "fhir", "files", "dicom", "pcd04", "kafka")


# ---------- YAML with line numbers ----------


def _construct(node: yaml.Node, loc: Loc, lines: dict[Loc, int], problems: list[RuleProblem], file: str) -> Any:
    lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            if key in out:
                problems.append(
                    RuleProblem(file, key_node.start_mark.line + 1, format_loc(loc + (key,)), f"duplicate key '{key}'")
                )
            lines[loc + (key,)] = key_node.start_mark.line + 1
            out[key] = _construct(value_node, loc + (key,), lines, problems, file)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, loc + (i,), lines, problems, file) for i, item in enumerate(node.value)]
    return _scalar(node)


def _scalar(node: yaml.Node) -> Any:
    return yaml.SafeLoader("").construct_object(node, deep=True)


def read_yaml(path: Path, problems: list[RuleProblem]) -> tuple[Any, dict[Loc, int]]:
    lines: dict[Loc, int] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        problems.append(RuleProblem(str(path), 1, "", f"not UTF-8 text ({exc.reason} at byte {exc.start})"))
        return None, lines
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        problems.append(RuleProblem(str(path), line, "", f"YAML syntax error: {getattr(exc, 'problem', exc)}"))
        return None, lines
    if node is None:
        return {}, lines
    return _construct(node, (), lines, problems, str(path)), lines


# ---------- pydantic errors -> rule problems ----------


def format_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def line_of(loc: Loc, lines: dict[Loc, int]) -> int:
    for n in range(len(loc), -1, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return 1


def _unwrap(tp: Any) -> list[Any]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return [a for arg in typing.get_args(tp) for a in _unwrap(arg)]
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(tp)[0])
    return [tp]


def model_at(model: type[BaseModel], loc: Loc) -> Any:
    """The type found at `loc` inside `model` (walks fields, list items and dict values)."""
    current: Any = model
    for part in loc:
        candidates = _unwrap(current)
        nxt = None
        for cand in candidates:
            origin = typing.get_origin(cand)
            if isinstance(cand, type) and issubclass(cand, BaseModel) and isinstance(part, str):
                field = _field_by_name_or_alias(cand, part)
                if field is not None:
                    nxt = field.annotation
            elif origin in (list, tuple) and isinstance(part, int):
                nxt = typing.get_args(cand)[0]
            elif origin is dict:
                nxt = typing.get_args(cand)[1]
            if nxt is not None:
                break
        if nxt is None:
            return None
        current = nxt
    return current


def _field_by_name_or_alias(model: type[BaseModel], name: str):
    for fname, field in model.model_fields.items():
        if name in (fname, field.alias):
            return field
    return None


def _known_keys(model: Any) -> list[str]:
    for cand in _unwrap(model):
        if isinstance(cand, type) and issubclass(cand, BaseModel):
            return [f.alias or n for n, f in cand.model_fields.items()]
    return []


def _allowed_values(tp: Any) -> list[str]:
    for cand in _unwrap(tp):
        if isinstance(cand, type) and issubclass(cand, Enum):
            return [str(m.value) for m in cand]
        if typing.get_origin(cand) is typing.Literal:
            return [str(a) for a in typing.get_args(cand)]
    return []


def describe_error(err: dict, model: type[BaseModel]) -> tuple[Loc, str]:
    loc: Loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    kind = err["type"]
    value = err.get("input")
    if kind == "extra_forbidden":
        parent = model_at(model, loc[:-1])
        known = ", ".join(_known_keys(parent))
        return loc, f"unknown key '{loc[-1]}' (known: {known})"
    if kind in ("enum", "literal_error"):
        # dict keys report the key itself as the last loc element with "[key]"
        allowed = _allowed_values(model_at(model, loc))
        if not allowed and len(loc) >= 1:
            parent = model_at(model, loc[:-1])
            for cand in _unwrap(parent):
                if typing.get_origin(cand) is dict:
                    allowed = _allowed_values(typing.get_args(cand)[0])
        if not allowed:
            allowed = [err.get("ctx", {}).get("expected", "")]
        return loc, f"{value!r} is not one of {', '.join(allowed)}"
    if kind == "missing":
        return loc, "required field is missing"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return loc, f"expected a mapping of keys, got {type(value).__name__} {value!r}"
    if kind == "list_type":
        return loc, f"expected a list, got {type(value).__name__} {value!r}"
    if value is None or isinstance(value, dict | list):
        return loc, err["msg"]
    return loc, f"{err['msg']} (got {value!r})"


def validation_problems(exc: ValidationError, model: type[BaseModel], file: str, lines: dict[Loc, int]) -> list[RuleProblem]:
    problems = []
    for err in exc.errors(include_url=False):
        loc, message = describe_error(err, model)
        # a dict key error has the key as the last loc element: point at the key's line
        problems.append(RuleProblem(file, line_of(loc, lines), format_loc(loc), message))
    return problems


# ---------- files -> RuleSet ----------


def rule_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and not p.name.endswith("_test.yaml"))
    return [path]


class LoadedRules(typing.NamedTuple):
    rules: RuleSet
    origins: dict[tuple[str, int], tuple[str, int]]  # (section, merged index) -> (file, line)


def load_rules(path: str | Path) -> RuleSet:
    """Load and validate a rule file or folder; raises RuleFileError listing every problem."""
    return load_rules_with_origins(path).rules


def load_rules_with_origins(path: str | Path) -> LoadedRules:
    path = Path(path)
    problems: list[RuleProblem] = []
    if not path.exists():
        raise RuleFileError([RuleProblem(str(path), 0, "", "no such file or folder")])
    files = rule_files(path)
    if not files:
        raise RuleFileError([RuleProblem(str(path), 0, "", "no .yaml rule files found")])
    merged: dict[str, Any] = {}
    origins: dict[tuple[str, int], tuple[str, int]] = {}
    single_origin: dict[str, str] = {}
    map_origin: dict[tuple[str, str], str] = {}
    for file in files:
        data, lines = read_yaml(file, problems)
        if data is None:
            continue
        if not isinstance(data, dict):
            problems.append(RuleProblem(str(file), 1, "", f"a rule file is a mapping of sections, got {type(data).__name__}"))
            continue
        try:
            parsed = RuleFile.model_validate(data)
        except ValidationError as exc:
            problems.extend(validation_problems(exc, RuleFile, str(file), lines))
            continue
        for section in LIST_SECTIONS:
            items = getattr(parsed, section)
            for i, item in enumerate(items or []):
                origins[(section, len(merged.setdefault(section, [])))] = (str(file), line_of((section, i), lines))
                merged[section].append(item)
        for section in MAP_SECTIONS:
            for key, value in (getattr(parsed, section) or {}).items():
                if (section, key) in map_origin:
                    problems.append(
                        RuleProblem(str(file), line_of((section, str(key)), lines), f"{section}.{key}",
                                    f"already defined in {map_origin[(section, key)]}")
                    )
                    continue
                map_origin[(section, key)] = f"{file}:{line_of((section, str(key)), lines)}"
                merged.setdefault(section, {})[key] = value
        for section in SINGLE_SECTIONS:
            value = getattr(parsed, section)
            if value is None:
                continue
            if section in single_origin:
                problems.append(
                    RuleProblem(str(file), line_of((section,), lines), section, f"section already defined in {single_origin[section]}")
                )
                continue
            single_origin[section] = f"{file}:{line_of((section,), lines)}"
            merged[section] = value
    if problems:
        raise RuleFileError(problems)
    rules = RuleSet.model_construct(**{**_defaults(), **merged})
    problems.extend(check_references(rules, origins))
    if problems:
        raise RuleFileError(problems)
    return LoadedRules(rules, origins)


def _defaults() -> dict[str, Any]:
    return {name: field.get_default(call_default_factory=True) for name, field in RuleSet.model_fields.items()}


# ---------- cross references ----------


def check_references(rules: RuleSet, origins: dict[tuple[str, int], tuple[str, int]]) -> list[RuleProblem]:
    problems: list[RuleProblem] = []

    def at(section: str, i: int, path: str, message: str) -> None:
        file, line = origins.get((section, i), ("<rules>", 0))
        problems.append(RuleProblem(file, line, path, message))

    def unique(section: str, key: str) -> None:
        seen: dict[str, int] = {}
        for i, item in enumerate(getattr(rules, section)):
            value = getattr(item, key)
            if value in seen:
                first = origins.get((section, seen[value]), ("?", 0))
                at(section, i, f"{section}[{i}].{key}", f"duplicate {key} '{value}' (first at {first[0]}:{first[1]})")
            else:
                seen[value] = i

    unique("device_types", "name")
    unique("devices", "id")
    unique("codes", "metric")
    unique("precedence", "metric")
    types_known = [t.name for t in rules.device_types]
    for i, device in enumerate(rules.devices):
        if device.type not in types_known:
            at("devices", i, f"devices[{i}].type", f"unknown device type '{device.type}' (known: {', '.join(types_known)})")
    sources = sorted(rules.sources())
    metrics = [c.metric for c in rules.codes] + ["alarm"]
    for i, rule in enumerate(rules.precedence):
        if rule.metric not in metrics:
            at("precedence", i, f"precedence[{i}].metric", f"unknown metric '{rule.metric}' (known: {', '.join(metrics)})")
        for j, source in enumerate(rule.rank):
            if source not in sources:
                at("precedence", i, f"precedence[{i}].rank[{j}]", f"unknown source '{source}' (known: {', '.join(sources)})")
        if rule.policy == "source-rank" and not rule.rank:
            at("precedence", i, f"precedence[{i}].rank", "policy source-rank needs a non-empty rank list")
    for i, route in enumerate(rules.routing):
        if route.sink not in KNOWN_SINKS:
            at("routing", i, f"routing[{i}].sink", f"unknown sink '{route.sink}' (known: {', '.join(KNOWN_SINKS)})")
        for metric, unit in route.units.items():
            if metric not in metrics:
                at("routing", i, f"routing[{i}].units.{metric}", f"unknown metric '{metric}' (known: {', '.join(metrics)})")
                continue
            canonical = next(c.unit for c in rules.codes if c.metric == metric)
            if unit != canonical and not any(
                c.from_unit == canonical and c.to_unit == unit for c in rules.units.conversions
            ):
                at("routing", i, f"routing[{i}].units.{metric}",
                   f"no conversion from {canonical} to '{unit}' in units.conversions")
    return problems
