"""Sinks: delivery to the EHR (HL7 v2 over MLLP, PCD-04 alarms, FHIR R4) and the demo files.

    sinks = build_sinks(rules, store)
    for event in observations:
        for sink in sinks:
            sink.add(event)            # each sink routes, converts and charts for itself
    for sink in sinks:
        await sink.flush()             # then commit input offsets (see docs/delivery-guarantees.md)
"""

from __future__ import annotations

from hub.rules.models import RuleSet
from hub.store import Store

NETWORK_SINKS = ("hl7v2", "pcd04", "fhir")


def build_sinks(rules: RuleSet, store: Store, *, render_ctx=None) -> list:
    """One sink per configured endpoint; `files` stands in for every endpoint not configured."""
    from hub.sinks.fhir_client import FhirSink
    from hub.sinks.files import FileSink
    from hub.sinks.mllp import MllpSink, render_context
    from hub.sinks.pcd04 import Pcd04Sink

    ctx = render_ctx if render_ctx is not None else render_context(rules)
    config = rules.sinks
    sinks: list = []
    if config.hl7v2 is not None:
        sinks.append(MllpSink(rules, store, config.hl7v2, render_ctx=ctx))
    if config.pcd04 is not None:
        sinks.append(Pcd04Sink(rules, store, config.pcd04, render_ctx=ctx))
    if config.fhir is not None:
        sinks.append(FhirSink(rules, store, config.fhir, render_ctx=ctx))
    if config.files is not None:
        missing = tuple(n for n in NETWORK_SINKS if getattr(config, n) is None)
        if missing:
            sinks.append(FileSink(rules, store, config.files, names=missing, render_ctx=ctx))
    return sinks


def sinks_by_name(sinks: list) -> dict:
    """Sink name -> sink, looking inside the FileSink's writers (DLQ replay finds sinks by name)."""
    found = {}
    for sink in sinks:
        for part in getattr(sink, "writers", [sink]):
            found[part.name] = part
    return found
