"""Embedded pipeline throughput, renderer rates and memory (one process, one core)."""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Iterator
from contextlib import contextmanager

from hub.bench import Figure, peak_rss_mb


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=int, default=200_000, help="numeric events through the pipeline")
    parser.add_argument("--render", type=int, default=5_000, help="messages/resources rendered per renderer")
    parser.add_argument("--rules", default="rules")


def ward_load(rules, n_events: int, start: float = 1_767_000_000.0):
    """Numeric readings from every monitor, arterial line, cuff and oximeter of the ward at 1 Hz."""
    from connectors.simulators.ward import demo_patients
    from hub.events import DataClass, Device, Event, EventKind, Provenance, make_event_id
    from hub.testing.factories import association_event

    patients = demo_patients(rules)
    bindings = [association_event(p.location, p.patient_id, t=start - 3600, encounter_id=p.encounter_id)
                for p in patients]
    codes = {"multi-parameter-monitor": ("147842", "/min", 80), "arterial-line": ("150017", "mmHg", 120),
             "nibp-cuff": ("150021", "mmHg", 130), "pulse-oximeter": ("150456", "%", 97)}
    devices = [d for d in rules.devices if d.type in codes and d.location]
    events = []
    i = 0
    while len(events) < n_events:
        t = start + i
        for d in devices:
            code, unit, base = codes[d.type]
            events.append(Event(
                event_id=make_event_id(d.id, code, t), kind=EventKind.NUMERIC, data_class=DataClass.VITAL,
                device=Device(id=d.id, type=d.type), stream=f"{d.id}/{code}", seq=i, device_time=t, received_time=t,
                code_sent=code, code_system_sent="MDC", value_sent=base + (i % 7), unit_sent=unit,
                provenance=Provenance(connector="bench")))
        i += 1
    return bindings, events[:n_events]


def measure_pipeline(rules, n_events: int, store=None) -> float:
    from hub.runtime.embedded import EmbeddedRuntime

    bindings, events = ward_load(rules, n_events)
    runtime = EmbeddedRuntime(rules, store=store, sinks=[], record_copies=False)
    runtime.process_batch(bindings, events[0].received_time)
    batch = 2000
    with load_out_of_collector():
        began = time.process_time()
        for i in range(0, len(events), batch):
            chunk = events[i:i + batch]
            runtime.process_batch(chunk, chunk[-1].received_time)
        runtime.drain(events[-1].received_time + 3600)
        if store is not None:
            store.flush()
        elapsed = time.process_time() - began
    assert sum(runtime.summary.events_in.values()) == n_events + len(bindings)
    return n_events / elapsed


@contextmanager
def load_out_of_collector() -> Iterator[None]:
    """Keep the pre-built load (every event of the run, held at once: a running hub holds a queue's
    worth) out of the garbage collector's full scans while the pipeline is timed."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def run(args: argparse.Namespace) -> list[Figure]:
    from hub.render import measure_render_rates
    from hub.rules.load import load_rules

    rules = load_rules(args.rules)
    pipeline = measure_pipeline(rules, args.events)
    rates = measure_render_rates(args.render)
    return [
        Figure("embedded_pipeline_events_per_s", round(pipeline), "events/s"),
        Figure("hl7v2_render_msgs_per_s", round(rates["hl7v2_render_msgs_per_s"]), "msgs/s"),
        Figure("fhir_render_resources_per_s", round(rates["fhir_render_resources_per_s"]), "resources/s"),
        Figure("peak_rss_mb", round(peak_rss_mb(), 1), "MB"),
    ]
