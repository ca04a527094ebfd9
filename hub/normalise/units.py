"""Unit normalisation: sent unit -> UCUM -> the metric's canonical unit (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from hub.errors import DecodeError
from hub.rules.codes import UnitRules


@dataclass(frozen=True)
class UnitConverter:
    aliases: dict[str, str]  # sent -> UCUM
    conversions: dict[tuple[str, str], tuple[float, float]]  # (from, to) -> (scale, offset)
    known_ucum: frozenset[str]

    @classmethod
    def from_rules(cls, units: UnitRules, canonical_units: set[str]) -> UnitConverter:
        aliases = {a.sent: a.ucum for a in units.aliases}
        conversions = {(c.from_unit, c.to_unit): (c.scale, c.offset) for c in units.conversions}
        known = set(aliases.values()) | canonical_units | {u for pair in conversions for u in pair}
        return cls(aliases, conversions, frozenset(known))

    def to_ucum(self, sent: str | None, default: str) -> str:
        """The UCUM unit meant by `sent`; a missing unit means the metric's canonical one."""
        if sent is None or sent == "":
            return default
        if sent in self.known_ucum:
            return sent
        ucum = self.aliases.get(sent)
        if ucum is None:
            raise DecodeError(
                f"unknown unit '{sent}' (add it to units.aliases; known: {', '.join(sorted(self.aliases)[:12])}, ...)",
                field="unit",
            )
        return ucum

    def convert(self, value: float, from_unit: str, to_unit: str) -> float:
        if from_unit == to_unit:
            return value
        rule = self.conversions.get((from_unit, to_unit))
        if rule is None:
            raise DecodeError(f"no conversion from '{from_unit}' to '{to_unit}' in units.conversions", field="unit")
        scale, offset = rule
        return value * scale + offset
