"""Pydantic validation errors -> rule problems that say what is allowed.

Pure. A pydantic error has a location (field names, list indexes, dict keys, and for
unions the name of each branch tried) and a terse message. Here the location is walked
against the rule models to find the type expected there, union branch names are
dropped (and the branches' errors merged into one problem), and the message is
rewritten to name what would be accepted: the enum values, the known keys, the kind
of value, the bound.
"""

from __future__ import annotations

import types
import typing
from datetime import date
from enum import Enum
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from hub.rules.errors import RuleProblem

Loc = tuple[str | int, ...]
KEY_MARK = "[key]"  # pydantic's marker for an error in a dict key


# ---------- walking the model types ----------


def unwrap(tp: Any) -> list[Any]:
    """The alternatives of a type: Optional/Union members, Annotated stripped, None dropped."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return [a for arg in typing.get_args(tp) if arg is not type(None) for a in unwrap(arg)]
    if origin is typing.Annotated:
        return unwrap(typing.get_args(tp)[0])
    return [tp]


def is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def field_named(model: type[BaseModel], name: str) -> FieldInfo | None:
    for fname, info in model.model_fields.items():
        if name in (fname, info.alias):
            return info
    return None


def step(tp: Any, part: str | int) -> Any:
    """The type one loc step inside `tp`, or None when `part` is not a step (a union branch name)."""
    for cand in unwrap(tp):
        origin = typing.get_origin(cand)
        if is_model(cand) and isinstance(part, str):
            info = field_named(cand, part)
            if info is not None:
                return info.annotation
        elif origin is list and isinstance(part, int):
            return typing.get_args(cand)[0]
        elif origin is tuple and isinstance(part, int):
            args = typing.get_args(cand)
            return args[0] if len(args) == 2 and args[1] is Ellipsis else args[min(part, len(args) - 1)]
        elif origin is dict:
            return typing.get_args(cand)[1]
    return None


def model_at(model: Any, loc: Loc) -> Any:
    """The type found at `loc` inside `model`, or None."""
    current = model
    for part in loc:
        current = step(current, part)
        if current is None:
            return None
    return current


def known_keys(tp: Any) -> list[str]:
    keys: list[str] = []
    for cand in unwrap(tp):
        if is_model(cand):
            keys += [info.alias or name for name, info in cand.model_fields.items() if (info.alias or name) not in keys]
    return keys


def allowed_values(tp: Any) -> list[str]:
    for cand in unwrap(tp):
        if isinstance(cand, type) and issubclass(cand, Enum):
            return [str(m.value) for m in cand]
        if typing.get_origin(cand) is typing.Literal:
            return [str(a) for a in typing.get_args(cand)]
    return []


def type_text(tp: Any) -> str:
    """A short human description of a type: 'a number', 'a list of text', 'one of a, b'."""
    alternatives = unwrap(tp)
    nullable = any(a is type(None) for a in typing.get_args(tp)) if typing.get_origin(tp) else False
    text = " or ".join(_one_type_text(a) for a in alternatives)
    return f"{text} or null" if nullable else text


def _one_type_text(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if tp is str:
        return "text"
    if tp is bool:
        return "true or false"
    if tp is int:
        return "a whole number"
    if tp is float:
        return "a number"
    if tp is Any or tp is object:
        return "any value"
    if isinstance(tp, type) and issubclass(tp, Enum) or origin is typing.Literal:
        return "one of " + ", ".join(allowed_values(tp))
    if is_model(tp):
        keys = known_keys(tp)
        return f"a mapping (keys: {', '.join(keys[:6])}{', ...' if len(keys) > 6 else ''})"
    if origin is list:
        return f"a list of {_plural(type_text(typing.get_args(tp)[0]))}"
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_plural(type_text(args[0]))}"
        return "[" + ", ".join(type_text(a).removeprefix("a ") for a in args) + "]"
    if origin is dict:
        key, value = typing.get_args(tp)
        return f"a mapping of {type_text(key)} to {type_text(value)}"
    return getattr(tp, "__name__", str(tp))


def _plural(text: str) -> str:
    if text.startswith("one of "):
        return f"items, each {text}"
    for single, plural in (("a whole number", "whole numbers"), ("a number", "numbers"), ("a mapping", "mappings")):
        if text.startswith(single):
            return plural + text[len(single):]
    return text


# ---------- errors -> problems ----------


def validation_problems(exc: ValidationError, model: type[BaseModel], file: str,
                        lines: dict[Loc, int]) -> list[RuleProblem]:
    """One problem per error; the errors from the branches of one union become one problem."""
    found: list[tuple[Loc, str]] = []
    unions: dict[Loc, dict[str, list[tuple[Loc, dict]]]] = {}
    for err in exc.errors(include_url=False):
        loc, union_at, branch, rest = split_loc(model, tuple(err["loc"]), err["type"])
        if err["type"] == "missing" and _in_fixed_tuple(model, loc):
            loc = loc[:-1]  # a short [low, high] pair: point at the pair, not at the absent item
        if union_at is None:
            found.append((loc, describe_error(err, model, loc)))
        else:
            unions.setdefault(union_at, {}).setdefault(branch, []).append((rest, err))
    for loc, branches in unions.items():
        found.append((loc, describe_union(model, loc, branches)))
    return [RuleProblem(file, line_of(loc, lines), format_loc(loc), message) for loc, message in found]


def describe_union(model: type[BaseModel], loc: Loc, branches: dict[str, list[tuple[Loc, dict]]]) -> str:
    """No branch matched. If one got past the type check, its errors say most; else name every form."""
    nested = {name: errs for name, errs in branches.items() if any(rest for rest, _ in errs)}
    if nested:
        name = min(nested, key=lambda b: len(nested[b]))
        parts = [describe_error(err, model, loc + rest) for rest, err in nested[name]]
        wheres = [format_loc(rest) for rest, _ in nested[name]]
        return f"read as {name}: " + "; ".join(f"{w}: {m}" if w else m for w, m in zip(wheres, parts, strict=True))
    value = next(iter(branches.values()))[0][1].get("input")
    return f"expected {type_text(model_at(model, loc))}, got {_got(value)}"


def split_loc(model: Any, raw: Loc, kind: str = "") -> tuple[Loc, Loc | None, str, Loc]:
    """(loc without union branch names, loc of the first union passed or None, its branch name, loc below it)."""
    loc: list[str | int] = []
    union_at: Loc | None = None
    branch = ""
    current = model
    for n, part in enumerate(raw):
        nxt = step(current, part) if current is not None and part != KEY_MARK else None
        is_last_key = kind == "extra_forbidden" and n == len(raw) - 1
        if nxt is None and isinstance(part, str) and part != KEY_MARK and current is not None and not is_last_key:
            if union_at is None:
                union_at, branch = tuple(loc), part
            continue  # a union branch name ('str', 'int', 'MllpListener', 'function-after[...]')
        loc.append(part)
        current = nxt
    clean = tuple(loc)
    rest = clean[len(union_at):] if union_at is not None else ()
    return clean, union_at, branch, rest


def describe_error(err: dict, model: type[BaseModel], loc: Loc) -> str:
    kind = err["type"]
    value = err.get("input")
    ctx = err.get("ctx") or {}
    if loc and loc[-1] == KEY_MARK:
        parent = model_at(model, loc[:-2])
        key_types = [typing.get_args(c)[0] for c in unwrap(parent) if typing.get_origin(c) is dict]
        allowed = allowed_values(key_types[0]) if key_types else []
        if allowed:
            return f"key {value!r} is not one of {', '.join(allowed)}"
        return f"key {value!r}: {err['msg']}"
    here = model_at(model, loc)
    if kind == "extra_forbidden":
        return f"unknown key '{loc[-1]}' (known: {', '.join(known_keys(model_at(model, loc[:-1])))})"
    if kind in ("enum", "literal_error"):
        allowed = allowed_values(here) or [str(ctx.get("expected", ""))]
        return f"{value!r} is not one of {', '.join(allowed)}"
    if kind == "missing":
        return _missing(model, loc, value)
    if kind in ("model_type", "model_attributes_type", "dict_type", "mapping_type"):
        keys = known_keys(here)
        expected = f"a mapping (keys: {', '.join(keys)})" if keys else "a mapping of keys to values"
        return f"expected {expected}, got {_got(value)}"
    if kind in ("list_type", "tuple_type", "set_type", "iterable_type"):
        hint = " (write [x] for a single item)" if isinstance(value, str | int | float) else ""
        return f"expected {type_text(here) if here is not None else 'a list'}, got {_got(value)}{hint}"
    if kind in ("too_short", "too_long"):
        return _length(here, value, ctx)
    if kind in ("string_type", "string_sub_type"):
        return f"expected text, got {_got(value)}{_quote_hint(value)}"
    if kind in ("int_parsing", "int_type", "int_from_float", "int_parsing_size"):
        return f"expected a whole number, got {_got(value)}"
    if kind in ("float_parsing", "float_type"):
        return f"expected a number, got {_got(value)}"
    if kind in ("bool_parsing", "bool_type"):
        return f"expected true or false, got {_got(value)}"
    if kind == "finite_number":
        return f"expected a finite number, got {_got(value)}"
    bounds = {"greater_than": ("greater than", "gt"), "greater_than_equal": ("at least", "ge"),
              "less_than": ("less than", "lt"), "less_than_equal": ("at most", "le")}
    if kind in bounds:
        words, key = bounds[kind]
        return f"must be {words} {_num(ctx.get(key))}, got {_got(value)}"
    if kind == "value_error":
        return str(ctx.get("error") or err["msg"]).removeprefix("Value error, ")
    return f"{err['msg']} (got {_got(value)})"


def _in_fixed_tuple(model: type[BaseModel], loc: Loc) -> bool:
    parent = model_at(model, loc[:-1])
    return bool(loc) and isinstance(loc[-1], int) and any(
        typing.get_origin(c) is tuple and Ellipsis not in typing.get_args(c) for c in unwrap(parent))


def _missing(model: type[BaseModel], loc: Loc, value: Any) -> str:
    if any(typing.get_origin(c) is tuple for c in unwrap(model_at(model, loc))) and isinstance(value, list):
        return _length(model_at(model, loc), value, {})
    keys = known_keys(model_at(model, loc[:-1]))
    expected = type_text(model_at(model, loc))
    return f"required key '{loc[-1]}' is missing (expected {expected})" if keys else "required value is missing"


def _length(tp: Any, value: Any, ctx: dict) -> str:
    count = len(value) if isinstance(value, list | tuple | dict | str) else "?"
    tuples = [c for c in unwrap(tp) if typing.get_origin(c) is tuple and Ellipsis not in typing.get_args(c)]
    if tuples:
        shape = type_text(tuples[0])
        return f"expected exactly {len(typing.get_args(tuples[0]))} items {shape}, got {count}: {value!r}"
    if "min_length" in ctx:
        return f"needs at least {ctx['min_length']} item(s), got {count}"
    if "max_length" in ctx:
        return f"takes at most {ctx['max_length']} item(s), got {count}"
    return f"wrong number of items ({count})"


def _got(value: Any) -> str:
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if value is None:
        return "null (empty)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        text = repr(list(value))
        return f"a list {text if len(text) <= 60 else text[:57] + '...'}"
    if isinstance(value, int | float):
        return _num(value)
    if isinstance(value, date):
        return f"the date {value.isoformat()}"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _num(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def _quote_hint(value: Any) -> str:
    if isinstance(value, bool):
        return " (YAML reads yes/no/on/off/true/false as booleans; quote it to keep it as text)"
    if isinstance(value, int):
        return " (quote it to keep it as text, e.g. \"...\"; unquoted digits with a leading 0 are read as octal)"
    if isinstance(value, float | date):
        return " (quote it to keep it as text, e.g. \"...\")"
    return ""


# ---------- locations and lines ----------


def format_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        if part == KEY_MARK:
            continue
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out


def line_of(loc: Loc, lines: dict[Loc, int]) -> int:
    """Line of the deepest known part of `loc` (the key, or the list item)."""
    loc = tuple(p for p in loc if p != KEY_MARK)
    for n in range(len(loc), -1, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return 1
