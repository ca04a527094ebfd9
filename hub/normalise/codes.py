"""Code and unit normalisation of one event (pure). Originals stay in the *_sent fields."""

from __future__ import annotations

from dataclasses import dataclass

from hub.errors import DecodeError
from hub.events import Event, EventKind, Quality
from hub.normalise.units import UnitConverter
from hub.rules.codes import MetricCode
from hub.rules.models import RuleSet

NORMALISED_KINDS = (EventKind.NUMERIC, EventKind.TEXT)


@dataclass(frozen=True)
class CodeMap:
    by_code: dict[tuple[str, str], MetricCode]  # (system, code) -> metric
    by_metric: dict[str, MetricCode]

    @classmethod
    def from_rules(cls, rules: RuleSet) -> CodeMap:
        by_code: dict[tuple[str, str], MetricCode] = {}
        for metric in rules.codes:
            by_code[("MDC", str(metric.mdc_code))] = metric
            by_code[("MDC", metric.mdc_ref)] = metric
            if metric.loinc:
                by_code[("LN", metric.loinc)] = metric
                by_code[("LOINC", metric.loinc)] = metric
            by_code[("DEVSYNC", metric.metric)] = metric
            for alias in metric.aliases:
                by_code[(alias.system, alias.code)] = metric
        return cls(by_code, {m.metric: m for m in rules.codes})

    def lookup(self, system: str | None, code: str | None) -> MetricCode | None:
        if code is None:
            return None
        return self.by_code.get((system or "MDC", code))


@dataclass(frozen=True)
class Normaliser:
    codes: CodeMap
    units: UnitConverter

    @classmethod
    def from_rules(cls, rules: RuleSet) -> Normaliser:
        return cls(CodeMap.from_rules(rules), UnitConverter.from_rules(rules.units, {c.unit for c in rules.codes}))


def normalise_event(norm: Normaliser, event: Event, *, source: str | None = None) -> Event:
    """Map the code to a metric (MDC + LOINC) and the value to the canonical UCUM unit.

    Raises DecodeError naming the code or unit when the rules cannot map it; the runtime
    sends that event to the DLQ with the reason and carries on.
    """
    changes = normalised_fields(norm, event.__dict__, source=source)
    return event.with_changes(**changes) if changes else event


def normalised_fields(norm: Normaliser, fields: dict, *, source: str | None = None) -> dict:
    """The fields normalise_event changes (empty when nothing changes), given the event's fields
    (its __dict__, or with a stage's pending changes), so a stage can apply them together with its
    own changes in one copy of the event."""
    kind = fields["kind"]
    already_normalised = fields["metric"] is not None and fields["unit"] is not None
    if kind not in NORMALISED_KINDS or already_normalised:
        return {} if source is None or fields["source"] == source else {"source": source}
    system, code = fields["code_system_sent"], fields["code_sent"]
    metric = norm.codes.lookup(system, code)
    if metric is None:
        raise DecodeError(
            f"unknown code '{code}' in system '{system or 'MDC'}' "
            f"(add it to codes[].aliases of the metric it means)",
            field="code",
        )
    mdc_code, unit = fields["mdc_code"], metric.unit
    if mdc_code is None and (system or "MDC") == "MDC" and str(code).isdigit():
        mdc_code = int(code)
    mdc_code = mdc_code or metric.mdc_code
    mdc_ref = fields["mdc_ref"] or (metric.mdc_ref if mdc_code == metric.mdc_code else None)
    changes: dict = {"metric": metric.metric, "mdc_code": mdc_code, "mdc_ref": mdc_ref, "loinc": metric.loinc}
    if source is not None:
        changes["source"] = source
    value_sent = fields["value_sent"]
    if kind is EventKind.TEXT:
        changes["text"] = fields["text"] if fields["text"] is not None else str(value_sent)
        changes["unit"] = unit
        return changes
    try:
        sent_value = float(value_sent) if value_sent is not None else fields["value"]
    except (TypeError, ValueError):
        raise DecodeError(f"value '{value_sent}' is not a number", field="value") from None
    if sent_value is None:
        raise DecodeError("numeric event without a value", field="value")
    ucum = norm.units.to_ucum(fields["unit_sent"], unit)
    value = norm.units.convert(sent_value, ucum, unit)
    if ucum != unit:
        value = round(value, sent_decimals(value_sent) + 2)  # no false precision from the conversion
    changes["value"] = value
    changes["unit"] = unit
    valid_range = metric.valid_range
    if valid_range and not (valid_range[0] <= value <= valid_range[1]):
        changes["quality"] = fields["quality"] | {Quality.QUESTIONABLE}
    return changes


def sent_decimals(value_sent: float | str | None) -> int:
    """Decimal places the device sent (98.6 -> 1), to round converted values sensibly."""
    text = str(value_sent)
    return min(len(text.split(".", 1)[1]), 4) if "." in text else 0
