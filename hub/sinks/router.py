"""Routing (pure): which events go to a sink, and in which unit and code representation.

A sink takes an event when one of its routes matches (data class, and the optional location
prefix, patient and metric filters). The matching route then converts the value to the unit
the sink wants (units.conversions of the rules) and drops the code system the sink does not take.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hub.errors import RuleError
from hub.events import Event
from hub.rules.codes import UnitConversion
from hub.rules.routing import Route


@dataclass(frozen=True)
class SinkRoutes:
    sink: str
    routes: tuple[tuple[int, Route], ...]  # (index in the rules' routing list, route)
    conversions: dict[tuple[str, str], tuple[float, float]]

    @classmethod
    def from_rules(cls, rules, sink: str) -> SinkRoutes:
        routes = tuple((i, r) for i, r in enumerate(rules.routing) if r.sink == sink)
        return cls(sink, routes, conversion_table(rules.units.conversions))


def conversion_table(conversions: Sequence[UnitConversion]) -> dict[tuple[str, str], tuple[float, float]]:
    return {(c.from_unit, c.to_unit): (c.scale, c.offset) for c in conversions}


def match_route(routes: SinkRoutes, event: Event) -> tuple[int, Route] | None:
    for index, route in routes.routes:
        if _matches(route, event):
            return index, route
    return None


def _matches(route: Route, event: Event) -> bool:
    if event.data_class not in route.data_classes:
        return False
    if route.metrics and event.metric not in route.metrics:
        return False
    patient = event.patient
    if route.patients and (patient is None or patient.patient_id not in route.patients):
        return False
    if route.locations:
        location = (patient.location if patient else None) or event.location or ""
        if not any(location.startswith(prefix) for prefix in route.locations):
            return False
    return True


def apply_route(routes: SinkRoutes, index: int, route: Route, event: Event) -> Event:
    """The event as this sink wants it; RuleError when the rules cannot convert its unit."""
    changes: dict = {}
    wanted = route.units.get(event.metric or "")
    if wanted and event.value is not None and event.unit != wanted:
        changes["value"] = convert_value(routes, index, event, wanted)
        changes["unit"] = wanted
    if route.codes == "mdc":
        changes["loinc"] = None
    elif route.codes == "loinc":
        if not event.loinc:
            raise RuleError(
                f"routing[{index}].codes: this sink takes LOINC codes only, but metric '{event.metric}' has no "
                f"LOINC code in the rules (give it one in codes, or route it with codes: mdc+loinc)"
            )
        changes["mdc_code"] = None
        changes["mdc_ref"] = None
    return event.with_changes(**changes) if changes else event


def convert_value(routes: SinkRoutes, index: int, event: Event, wanted: str) -> float:
    rule = routes.conversions.get((event.unit or "", wanted))
    if rule is None:
        known = sorted(to for (frm, to) in routes.conversions if frm == event.unit)
        raise RuleError(
            f"routing[{index}].units.{event.metric}: no conversion from '{event.unit}' to '{wanted}' "
            f"in units.conversions (from '{event.unit}' the rules convert to: {', '.join(known) or 'nothing'})"
        )
    scale, offset = rule
    return round(event.value * scale + offset, 6)
