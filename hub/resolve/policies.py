"""Precedence policies: pure functions from a candidate set to a winner.

Every policy sees the candidates sorted by (time, event id), so the decision depends on
the set only, never on arrival order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

from hub.events import ALARM_SEVERITY, INVALID_FLAGS, Event, time_and_id
from hub.rules.precedence import Policy, PrecedenceRule


class Choice(NamedTuple):
    winner: Event | None
    reason: str
    value: float | None = None  # set when the policy computes a value (average)
    review: bool = False


def is_valid(event: Event) -> bool:
    quality = event.quality
    return not quality or not (quality & INVALID_FLAGS)


by_time: Callable[[Event], tuple[float, str]] = time_and_id  # sort key: (time, event id)


def choose_most_recent_valid(candidates: Sequence[Event], rule: PrecedenceRule | None, fidelity) -> Choice:
    valid = [c for c in candidates if is_valid(c)]
    if not valid:
        return Choice(None, "no valid candidate (all flagged invalid/test/demo/calibrating)")
    return Choice(valid[-1], f"most recent valid of {len(valid)}")  # the latest: candidates come sorted


def choose_source_rank(candidates: Sequence[Event], rule: PrecedenceRule | None, fidelity) -> Choice:
    rank = rule.rank if rule else []
    fallback = POLICIES[(rule and rule.fallback) or Policy.MOST_RECENT_VALID]
    valid_by_source: dict[str | None, list[Event]] = {}
    for c in candidates:
        if is_valid(c):
            valid_by_source.setdefault(c.source, []).append(c)
    for position, source in enumerate(rank):
        ranked = valid_by_source.get(source)
        if ranked:
            choice = fallback(ranked, rule, fidelity)
            return Choice(choice.winner, f"source {source} ranks #{position + 1}; {choice.reason}", choice.value)
    choice = fallback(candidates, rule, fidelity)
    return Choice(choice.winner, f"no ranked source valid; fallback: {choice.reason}", choice.value)


def choose_highest_fidelity(candidates: Sequence[Event], rule: PrecedenceRule | None, fidelity) -> Choice:
    valid = [c for c in candidates if is_valid(c)]
    if not valid:
        return Choice(None, "no valid candidate")
    winner = max(valid, key=lambda c: (fidelity(c), by_time(c)))
    return Choice(winner, f"highest fidelity {fidelity(winner)} ({winner.source})")


def choose_average(candidates: Sequence[Event], rule: PrecedenceRule | None, fidelity) -> Choice:
    valid = [c for c in candidates if is_valid(c) and c.value is not None]
    if not valid:
        return Choice(None, "no valid numeric candidate")
    mean = sum(c.value for c in valid) / len(valid)
    return Choice(valid[-1], f"average of {len(valid)} valid values", value=mean)  # the latest: sorted


def choose_most_severe(candidates: Sequence[Event], rule: PrecedenceRule | None, fidelity) -> Choice:
    valid = [c for c in candidates if is_valid(c)]
    if not valid:
        return Choice(None, "no valid candidate")
    winner = max(valid, key=lambda c: (ALARM_SEVERITY.get(c.alarm.priority, 0) if c.alarm else 0, by_time(c)))
    return Choice(winner, "most severe")


def choose_manual_review(candidates: Sequence[Event], rule: PrecedenceRule | None, fidelity) -> Choice:
    return Choice(None, f"policy manual-review: {len(candidates)} candidate(s) held for a reviewer", review=True)


PolicyFn = Callable[[Sequence[Event], PrecedenceRule | None, Callable[[Event], int]], Choice]

POLICIES: dict[Policy, PolicyFn] = {
    Policy.MOST_RECENT_VALID: choose_most_recent_valid,
    Policy.SOURCE_RANK: choose_source_rank,
    Policy.HIGHEST_FIDELITY: choose_highest_fidelity,
    Policy.AVERAGE: choose_average,
    Policy.MOST_SEVERE: choose_most_severe,
    Policy.MANUAL_REVIEW: choose_manual_review,
}


def resolve_conflict(candidates: Sequence[Event], rule: PrecedenceRule | None, fidelity, *,
                     presorted: bool = False) -> Choice:
    """Apply the metric's policy (most-recent-valid when the rules name none).

    `presorted=True`: the caller already sorted the candidates by (time, event id)."""
    ordered = candidates if presorted else sorted(candidates, key=by_time)
    policy = rule.policy if rule else Policy.MOST_RECENT_VALID
    choice = POLICIES[policy](ordered, rule, fidelity)
    if rule and rule.disagreement_threshold is not None:
        values = [c.value for c in ordered if is_valid(c) and c.value is not None]
        if values and max(values) - min(values) > rule.disagreement_threshold:
            spread = max(values) - min(values)
            return Choice(choice.winner, f"{choice.reason}; candidates disagree by {spread:g} "
                          f"(> {rule.disagreement_threshold:g}): flagged for review", choice.value, review=True)
    return choice
