"""Checks across sections of a merged RuleSet: references resolve, names are unique,
settings do not contradict each other.

Pure: takes the RuleSet and a `locate(loc) -> (file, line, loc in that file)` function,
returns problems whose paths use each file's own list indexes.
Each message names what is known/allowed, so the fix is obvious from the message alone.
"""

from __future__ import annotations

from collections.abc import Callable

from hub.rules.errors import RuleProblem
from hub.rules.messages import Loc, format_loc
from hub.rules.models import RuleSet

KNOWN_SINKS = ("hl7v2", "fhir", "files", "dicom", "pcd04", "kafka")
Locate = Callable[[Loc], tuple[str, int, Loc]]  # merged loc -> (file, line, loc within that file)


class _Report:
    def __init__(self, locate: Locate):
        self.locate = locate
        self.problems: list[RuleProblem] = []
        self.absent: set[str] = set()

    def add(self, loc: Loc, message: str) -> None:
        file, line, local = self.locate(loc)
        self.problems.append(RuleProblem(file, line, format_loc(local), message))

    def unknown(self, loc: Loc, what: str, value: str, known: list[str], section: str) -> None:
        """Unknown reference; when the referenced section is absent altogether, say so once."""
        if known:
            self.add(loc, f"unknown {what} '{value}' (known: {', '.join(known)})")
        elif section not in self.absent:
            self.absent.add(section)
            self.add(loc, f"unknown {what} '{value}': no {section} are defined in the loaded files "
                          "(check the whole rule folder, e.g. devsync rules check rules/)")

    def first_at(self, loc: Loc) -> str:
        file, line, _ = self.locate(loc)
        return f"{file}:{line}"


def check_rules(rules: RuleSet, locate: Locate) -> list[RuleProblem]:
    report = _Report(locate)
    check_unique(rules, report)
    check_devices(rules, report)
    check_precedence(rules, report)
    check_routing(rules, report)
    check_codes(rules, report)
    check_units(rules, report)
    check_profiles(rules, report)
    check_association(rules, report)
    return report.problems


def check_unique(rules: RuleSet, report: _Report) -> None:
    for section, key in (("device_types", "name"), ("devices", "id"), ("codes", "metric"),
                         ("precedence", "metric")):
        seen: dict[object, int] = {}
        for i, item in enumerate(getattr(rules, section)):
            value = getattr(item, key)
            if value in seen:
                report.add((section, i, key),
                           f"duplicate {key} '{value}' (first at {report.first_at((section, seen[value], key))})")
            else:
                seen[value] = i


def check_devices(rules: RuleSet, report: _Report) -> None:
    types_known = [t.name for t in rules.device_types]
    for i, device in enumerate(rules.devices):
        if device.type not in types_known:
            report.unknown(("devices", i, "type"), "device type", device.type, types_known, "device_types")


def _metrics(rules: RuleSet) -> list[str]:
    return [c.metric for c in rules.codes] + ["alarm"]


def check_precedence(rules: RuleSet, report: _Report) -> None:
    sources = sorted(rules.sources())
    metrics = _metrics(rules)
    for i, rule in enumerate(rules.precedence):
        if rule.metric not in metrics:
            known = metrics if rules.codes else []
            report.unknown(("precedence", i, "metric"), "metric", rule.metric, known, "codes")
        for j, source in enumerate(rule.rank):
            if source not in sources:
                report.unknown(("precedence", i, "rank", j), "source", source, sources, "device_types")
            elif source in rule.rank[:j]:
                report.add(("precedence", i, "rank", j), f"source '{source}' is ranked twice")
        if "source-rank" in (rule.policy, rule.fallback) and not rule.rank:
            field = "policy" if rule.policy == "source-rank" else "fallback"
            report.add(("precedence", i, field), "source-rank needs a non-empty rank list (sources best first)")


def check_routing(rules: RuleSet, report: _Report) -> None:
    metrics = _metrics(rules)
    for i, route in enumerate(rules.routing):
        if route.sink not in KNOWN_SINKS:
            report.add(("routing", i, "sink"), f"unknown sink '{route.sink}' (known: {', '.join(KNOWN_SINKS)})")
        for metric, unit in route.units.items():
            loc = ("routing", i, "units", metric)
            if metric not in metrics or metric == "alarm":
                report.unknown(loc, "metric", metric, metrics[:-1], "codes")
                continue
            canonical = next(c.unit for c in rules.codes if c.metric == metric)
            targets = [c.to_unit for c in rules.units.conversions if c.from_unit == canonical]
            if unit != canonical and unit not in targets:
                can = ", ".join([canonical] + targets)
                report.add(loc, f"no conversion from {canonical} to '{unit}' in units.conversions (possible: {can})")


def check_codes(rules: RuleSet, report: _Report) -> None:
    """A vendor or MDC code may mean one metric only."""
    owner: dict[tuple[str, str], tuple[str, Loc]] = {}
    for i, code in enumerate(rules.codes):
        claims = [(("MDC", str(code.mdc_code)), ("codes", i, "mdc_code")),
                  (("MDC", code.mdc_ref), ("codes", i, "mdc_ref"))]
        claims += [((a.system, a.code), ("codes", i, "aliases", j)) for j, a in enumerate(code.aliases)]
        for key, loc in claims:
            if key in owner and owner[key][0] != code.metric:
                metric, first = owner[key]
                report.add(loc, f"{key[0]} code '{key[1]}' already means metric '{metric}' "
                                f"(at {report.first_at(first)}); a code may map to one metric only")
            owner.setdefault(key, (code.metric, loc))


def check_units(rules: RuleSet, report: _Report) -> None:
    sent: dict[str, int] = {}
    for i, alias in enumerate(rules.units.aliases):
        if alias.sent in sent and rules.units.aliases[sent[alias.sent]].ucum != alias.ucum:
            first = rules.units.aliases[sent[alias.sent]]
            report.add(("units", "aliases", i, "sent"),
                       f"unit '{alias.sent}' already maps to '{first.ucum}' "
                       f"(at {report.first_at(('units', 'aliases', sent[alias.sent]))})")
        sent.setdefault(alias.sent, i)
    pairs: dict[tuple[str, str], int] = {}
    for i, conv in enumerate(rules.units.conversions):
        pair = (conv.from_unit, conv.to_unit)
        if pair in pairs:
            report.add(("units", "conversions", i),
                       f"conversion {pair[0]} -> {pair[1]} defined twice "
                       f"(first at {report.first_at(('units', 'conversions', pairs[pair]))})")
        pairs.setdefault(pair, i)
        if conv.scale == 0:
            report.add(("units", "conversions", i, "scale"), "scale must not be 0 (to = from * scale + offset)")


def check_profiles(rules: RuleSet, report: _Report) -> None:
    for data_class, profile in rules.sync_profiles.items():
        loc = ("sync_profiles", str(data_class))
        if profile.reorder_window_s > profile.latency_budget_s:
            report.add(loc + ("reorder_window_s",),
                       f"reorder window {profile.reorder_window_s:g} s is longer than latency_budget_s "
                       f"{profile.latency_budget_s:g} s (every held event would miss its budget)")
        if profile.staleness_limit_s is not None and profile.poll_interval_s is not None and (
            profile.staleness_limit_s < profile.poll_interval_s
        ):
            report.add(loc + ("staleness_limit_s",),
                       f"staleness limit {profile.staleness_limit_s:g} s is shorter than poll_interval_s "
                       f"{profile.poll_interval_s:g} s (every polled value would turn stale)")


def check_association(rules: RuleSet, report: _Report) -> None:
    seen: dict[str, int] = {}
    for i, binding in enumerate(rules.association.static_bindings):
        if binding.location in seen:
            report.add(("association", "static_bindings", i, "location"),
                       f"location '{binding.location}' is bound twice "
                       f"(first at {report.first_at(('association', 'static_bindings', seen[binding.location]))})")
        seen.setdefault(binding.location, i)
