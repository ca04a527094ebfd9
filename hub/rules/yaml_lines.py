"""YAML text -> plain Python data plus the line of every key and list item.

Pure: bytes or text in, (data, lines, problems) out. Never raises for bad input; every
problem is returned as a RuleProblem naming the file and line. What it accepts is the
YAML a rule file needs: mappings with plain keys, lists, scalars (read with PyYAML's
safe rules), anchors/aliases and `<<` merge keys. Tags outside the YAML core schema,
recursive aliases, alias bombs and absurd nesting are problems, not crashes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from hub.rules.errors import RuleProblem
from hub.rules.messages import Loc, format_loc
MAX_DEPTH = 64  # nesting levels; real rule files use fewer than 8
MAX_FLOW_DEPTH = 100  # open [ / { at once; the YAML scanner gets slow beyond
MAX_NODES = 500_000  # values after expanding aliases (stops alias bombs)
CORE_TAG = "tag:yaml.org,2002:"
MERGE_TAG = CORE_TAG + "merge"
SYNTAX_HINTS = (  # PyYAML's words -> what to look at
    ("expected <block end>", "check this line's indentation against the lines above"),
    ("mapping values are not allowed", "a value holding ': ' must be quoted, or a key is indented wrongly"),
    ("could not find expected ':'", "a key needs ': ' after it, or a quote is not closed"),
    ("found character '\\t'", "indent with spaces, not tabs"),
    ("expected ',' or ']'", "a [ ... ] list is not closed"),
    ("expected ',' or '}'", "a { ... } mapping is not closed"),
    ("found undefined alias", "define the anchor (&name) before using *name"),
    ("found unexpected end of stream", "a quote or bracket is not closed"),
)


@dataclass
class YamlDoc:
    """A parsed rule file: `data` is None when the text could not be read at all."""

    data: Any
    lines: dict[Loc, int] = field(default_factory=dict)  # loc -> line of its key / list item (1-based)
    problems: list[RuleProblem] = field(default_factory=list)


def decode_rule_bytes(raw: bytes, file: str) -> tuple[str | None, list[RuleProblem]]:
    """UTF-8 (with or without BOM) -> text; otherwise a problem naming the line and byte."""
    try:
        return raw.decode("utf-8-sig"), []
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        byte = raw[exc.start]
        return None, [
            RuleProblem(file, line, "", f"not UTF-8 text: byte 0x{byte:02x} at column {column} cannot be decoded "
                                        "(save the file as UTF-8)")
        ]


def parse_yaml(text: str, file: str) -> YamlDoc:
    """Parse one YAML document, keeping the line of every key and item."""
    deep = _deep_flow_line(text)
    if deep:  # PyYAML's scanner slows down quadratically with [ { nesting: refuse before parsing
        return YamlDoc(None, problems=[RuleProblem(file, deep, "", f"more than {MAX_FLOW_DEPTH} nested [ or {{")])
    try:
        node = _compose_fast(text, file)
        if isinstance(node, RuleProblem):
            return YamlDoc(None, problems=[node])
        if node is _FAILED:  # libyaml said no: PyYAML gives the clearer message (and the tested one)
            node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        return YamlDoc(None, problems=[_syntax_problem(exc, file)])
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        char = chr(exc.character) if isinstance(exc.character, int) else exc.character
        return YamlDoc(None, problems=[
            RuleProblem(file, line, "", f"character {char!r} is not allowed in YAML text ({exc.reason})")
        ])
    except yaml.YAMLError as exc:
        return YamlDoc(None, problems=[RuleProblem(file, 1, "", f"YAML syntax error: {exc}")])
    except RecursionError:
        return YamlDoc(None, problems=[RuleProblem(file, 1, "", f"nested more than {MAX_DEPTH} levels deep")])
    if node is None:
        return YamlDoc({}, {(): 1})
    size = _expanded_size(node, {}, set())
    if size > MAX_NODES:
        return YamlDoc(None, problems=[
            RuleProblem(file, 1, "", f"more than {MAX_NODES} values after expanding aliases: "
                                     "an alias bomb or a runaway anchor")
        ])
    builder = _Builder(file)
    data = builder.build(node, ())
    return YamlDoc(data, builder.lines, builder.problems)


_FAILED = object()


def _compose_fast(text: str, file: str) -> yaml.Node | RuleProblem | None | object:
    """Compose with libyaml (about 10x faster than pure PyYAML) when it is installed.

    libyaml's composer recurses in C and crashes the process on absurd nesting, so the
    (non-recursive) event stream is checked for depth first. Returns _FAILED when libyaml
    is missing or rejects the text.
    """
    loader = getattr(yaml, "CSafeLoader", None)
    if loader is None:
        return _FAILED
    try:
        depth = 0
        for event in yaml.parse(text, Loader=loader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    return RuleProblem(file, event.start_mark.line + 1, "", f"nested more than {MAX_DEPTH} levels deep")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
        return yaml.compose(text, Loader=loader)
    except yaml.YAMLError:
        return _FAILED


def _deep_flow_line(text: str) -> int:
    """Line where open [ and { first exceed MAX_FLOW_DEPTH (quotes ignored: a rough guard), else 0."""
    if text.count("[") + text.count("{") <= MAX_FLOW_DEPTH:
        return 0
    depth = 0
    line = 1
    for char in text:
        if char in "[{":
            depth += 1
            if depth > MAX_FLOW_DEPTH:
                return line
        elif char in "]}":
            depth = max(0, depth - 1)
        elif char == "\n":
            line += 1
    return 0


def _expanded_size(node: yaml.Node, memo: dict[int, int], active: set[int]) -> int:
    """How many values the document holds once every alias is expanded (without expanding them)."""
    if id(node) in memo:
        return memo[id(node)]
    if isinstance(node, yaml.ScalarNode) or id(node) in active or len(active) > MAX_DEPTH:
        return 1  # cycles and deep nesting are reported by the builder
    active.add(id(node))
    children = node.value if isinstance(node, yaml.SequenceNode) else [n for pair in node.value for n in pair]
    total = 1
    for child in children:
        total += _expanded_size(child, memo, active)
        if total > MAX_NODES:
            break
    active.discard(id(node))
    memo[id(node)] = total
    return total


def _syntax_problem(exc: yaml.MarkedYAMLError, file: str) -> RuleProblem:
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark else 1
    message = exc.problem or "invalid YAML"
    for clue, hint in SYNTAX_HINTS:
        if clue in message:
            message += f"; {hint}"
            break
    if exc.context:
        context_line = exc.context_mark.line + 1 if exc.context_mark else line
        message += f" ({exc.context} started at line {context_line})"
    return RuleProblem(file, line, "", f"YAML syntax error: {message}")


class _Builder:
    """Builds Python data from a composed node tree, recording lines and problems."""

    def __init__(self, file: str):
        self.file = file
        self.lines: dict[Loc, int] = {}
        self.problems: list[RuleProblem] = []
        self.count = 0
        self.too_big = False
        self.active: set[int] = set()  # ids of nodes on the current path (recursive aliases)
        self.loader = yaml.SafeLoader("")

    def problem(self, node: yaml.Node, loc: Loc, message: str) -> None:
        self.problems.append(RuleProblem(self.file, node.start_mark.line + 1, format_loc(loc), message))

    def build(self, node: yaml.Node, loc: Loc) -> Any:
        self.lines.setdefault(loc, node.start_mark.line + 1)
        self.count += 1
        if self.count > MAX_NODES:
            if not self.too_big:
                self.too_big = True
                self.problem(node, loc, f"more than {MAX_NODES} values after expanding aliases")
            return None
        if id(node) in self.active:
            self.problem(node, loc, "alias refers to a value that contains it (recursive alias)")
            return None
        if len(loc) > MAX_DEPTH:
            self.problem(node, loc, f"nested more than {MAX_DEPTH} levels deep")
            return None
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, loc)
        if not node.tag.startswith(CORE_TAG):
            self.problem(node, loc, f"unknown YAML tag '{node.tag}' (rule files use plain values; remove the tag)")
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [self.build(item, loc + (i,)) for i, item in enumerate(node.value)]
            return self.mapping(node, loc)
        finally:
            self.active.discard(id(node))

    def scalar(self, node: yaml.ScalarNode, loc: Loc) -> Any:
        if not node.tag.startswith(CORE_TAG):
            self.problem(node, loc, f"unknown YAML tag '{node.tag}' (rule files use plain values; remove the tag)")
            return node.value
        try:
            return self.loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:
            reason = getattr(exc, "problem", None) or str(exc)
            self.problem(node, loc, f"cannot read value {node.value!r}: {reason} (quote it to keep it as text)")
            return node.value
        finally:
            self.loader.constructed_objects.clear()

    def mapping(self, node: yaml.MappingNode, loc: Loc) -> dict[str, Any]:
        out = self.merged(node, loc)
        explicit: set[str] = set()
        for key_node, value_node in node.value:
            if key_node.tag == MERGE_TAG:
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                kind = "list" if isinstance(key_node, yaml.SequenceNode) else "mapping"
                self.problem(key_node, loc, f"a key must be a plain name, got a {kind}")
                continue
            key = key_node.value
            if key in explicit:
                self.problem(key_node, loc + (key,),
                             f"duplicate key '{key}' (first at line {self.lines[loc + (key,)]})")
                continue
            explicit.add(key)
            self.lines[loc + (key,)] = key_node.start_mark.line + 1
            out[key] = self.build(value_node, loc + (key,))
        return out

    def merged(self, node: yaml.MappingNode, loc: Loc) -> dict[str, Any]:
        """Keys from `<<: *anchor` / `<<: [*a, *b]`; explicit keys later override them, earlier sources win."""
        sources: list[yaml.Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == MERGE_TAG:
                sources.extend(value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node])
        out: dict[str, Any] = {}
        for source in reversed(sources):  # built last-first so earlier sources overwrite values and lines
            if not isinstance(source, yaml.MappingNode):
                self.problem(source, loc + ("<<",), "a merge key (<<) takes a mapping or a list of mappings")
                continue
            out.update(self.build(source, loc) or {})
        return out
