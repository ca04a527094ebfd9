"""Rendering throughput, for `devsync bench embedded` (figures hl7v2_render_msgs_per_s and
fhir_render_resources_per_s). Measures the pure renderers on one core; no validation on this path.

    from hub.render import measure_render_rates
    measure_render_rates(5000)  # {"hl7v2_render_msgs_per_s": ..., "fhir_render_resources_per_s": ..., ...}
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

from hub.events import PatientBinding
from hub.render.context import RenderContext
from hub.render.fhir import build_observation, build_transaction_bundle, dumps
from hub.render.hl7v2 import build_oru_r01
from hub.render.pcd04 import build_oru_r40
from hub.render.samples import T0, sample_alarm, sample_bed
from hub.rules.models import RuleSet

DEFAULT_RULES = Path(__file__).resolve().parents[2] / "rules"
BEDS = 8
ROUNDS = 5


def measure_render_rates(n: int = 5000, *, rules: RuleSet | None = None) -> dict[str, float]:
    """Render `n` of each output from realistic ward events and return rates per CPU second.

    One core: process CPU time, in ROUNDS rounds of n / ROUNDS, the median round counted (a busy shared
    machine then distorts the figure less). hl7v2: one ORU^R01 per patient with one bed's round of 10
    observations from 4 devices (26 OBX rows); fhir: one Observation built and serialised (orjson) per
    event; fhir_bundle: 100-entry transaction Bundles, counted per resource; pcd04: one ORU^R40 per alarm.
    """
    if rules is None:
        from hub.rules.load import load_rules

        rules = load_rules(DEFAULT_RULES)
    ctx = RenderContext.from_rules(rules)
    batches = [sample_bed(rules, t=T0 + i, seq=i, patient=PatientBinding(
        patient_id=f"MRN{i:04d}", encounter_id=f"ENC{i:04d}", location=f"ICU1-BED{i + 1:02d}",
        patient_name="Doe^Jane")) for i in range(BEDS)]
    events = [e for batch in batches for e in batch]
    bundle_events = (events * (100 // len(events) + 1))[:100]
    alarm = sample_alarm(rules)
    for batch in batches:  # warm the per-context caches, as a running sink would have them
        build_oru_r01(batch, ctx, control_id="warm", message_time=T0)

    def hl7(i: int) -> None:
        build_oru_r01(batches[i % BEDS], ctx, control_id=f"C{i}", message_time=T0 + i)

    def fhir(i: int) -> None:
        dumps(build_observation(events[i % len(events)], ctx))

    def bundle(_: int) -> None:
        dumps(build_transaction_bundle(bundle_events, ctx))

    def pcd04(i: int) -> None:
        build_oru_r40(alarm, ctx, control_id=f"A{i}", message_time=T0 + i)

    hl7_rate = _rate(hl7, n)
    observations_per_message = len(events) / BEDS
    return {
        "hl7v2_render_msgs_per_s": hl7_rate,
        "hl7v2_render_obs_per_s": hl7_rate * observations_per_message,
        "fhir_render_resources_per_s": _rate(fhir, n),
        "fhir_bundle_render_resources_per_s": _rate(bundle, max(ROUNDS, n // 100)) * 100,
        "pcd04_render_msgs_per_s": _rate(pcd04, n),
    }


def _rate(work: Callable[[int], None], n: int) -> float:
    """Calls per CPU second: the median of ROUNDS rounds of n / ROUNDS calls."""
    per_round = max(1, n // ROUNDS)
    seconds = []
    for r in range(ROUNDS):
        started = time.process_time()
        for i in range(r * per_round, (r + 1) * per_round):
            work(i)
        seconds.append(time.process_time() - started)
    return per_round / max(statistics.median(seconds), 1e-9)
