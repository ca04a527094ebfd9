"""Sink throughput: HL7 v2 over MLLP with ACKs, FHIR transaction Bundles, ledger writes on PostgreSQL.

Figures:
  hl7v2_sink_msgs_per_s      ORU^R01 messages per second, each ACKed (MSA-2 matched) by a loopback
                             MLLP peer in another process, ledger on SQLite (write-ahead + outcome)
  fhir_sink_resources_per_s  Observations per second in transaction Bundles of 100 (conditional
                             create) to a loopback FHIR peer in another process
  ledger_writes_per_s        delivery outcomes per second written to PostgreSQL (each: one history
                             row + one state upsert), in batches as the sinks write them
  hl7v2_sink_cpu_s_per_msg / fhir_sink_cpu_s_per_resource
                             CPU seconds the hub process spent per message / resource (includes
                             building the test events and opening the store: an upper bound)
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path

from hub.bench import Figure
from hub.bench.sink_peers import Peer


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--messages", type=int, default=5000, help="HL7 messages to send (default 5000)")
    parser.add_argument("--resources", type=int, default=20000, help="FHIR Observations to send (default 20000)")
    parser.add_argument("--ledger-rows", type=int, default=50000, help="ledger outcomes to write (default 50000)")
    parser.add_argument("--connections", type=int, default=4, help="MLLP connections (default 4)")
    parser.add_argument("--db", default="postgresql://postgres@127.0.0.1:5432/test",
                        help="PostgreSQL URL for ledger_writes_per_s (a temporary schema is used and dropped)")


def run(args: argparse.Namespace) -> list[Figure]:
    with tempfile.TemporaryDirectory() as folder:
        cpu = time.process_time()
        hl7_rate = asyncio.run(measure_mllp(args.messages, args.connections, Path(folder)))
        hl7_cpu = (time.process_time() - cpu) / args.messages
        cpu = time.process_time()
        fhir_rate = asyncio.run(measure_fhir(args.resources, Path(folder)))
        fhir_cpu = (time.process_time() - cpu) / args.resources
    ledger_rate = measure_ledger(args.db, args.ledger_rows)
    return [
        Figure("hl7v2_sink_msgs_per_s", round(hl7_rate, 1), "msgs/s"),
        Figure("fhir_sink_resources_per_s", round(fhir_rate, 1), "resources/s"),
        Figure("ledger_writes_per_s", round(ledger_rate, 1), "writes/s"),
        # the hub's own CPU per item (this process; the peers run elsewhere): steadier on a busy machine
        Figure("hl7v2_sink_cpu_s_per_msg", round(hl7_cpu, 6), "s"),
        Figure("fhir_sink_cpu_s_per_resource", round(fhir_cpu, 6), "s"),
    ]


def readings(n: int):
    """n heart-rate observations over 9 patients, one second apart per patient (one per message)."""
    from hub.events import DataClass, Device, Event, EventKind, PatientBinding, Provenance, make_event_id

    device = Device(id="MON-01", type="multi-parameter-monitor", eui64="0600dc7500010001")
    t0 = 1_795_000_000.0
    events = []
    for i in range(n):
        patient = f"MRN{i % 9:04d}"
        t = t0 + i // 9
        events.append(Event(
            event_id=make_event_id("bench", patient, i), kind=EventKind.NUMERIC, data_class=DataClass.VITAL,
            device=device, stream="MON-01/147842", seq=i, device_time=t, received_time=t, corrected_time=t,
            code_sent="147842", code_system_sent="MDC", metric="heart-rate", mdc_code=147842,
            mdc_ref="MDC_ECG_CARD_BEAT_RATE", loinc="8867-4", value_sent=60 + i % 40, unit_sent="/min",
            value=float(60 + i % 40), unit="/min", source="monitor",
            patient=PatientBinding(patient_id=patient, encounter_id=f"E{patient}", location=f"ICU1-BED0{i % 9 + 1}"),
            provenance=Provenance(connector="bench")))
    return events


def bench_rules(sinks: dict):
    from hub.rules.load import load_rules
    from hub.rules.sinks import SinkRules

    rules = load_rules(Path(__file__).resolve().parents[2] / "rules")
    return rules.model_copy(update={"sinks": SinkRules.model_validate(sinks)})


async def measure_mllp(n: int, connections: int, folder: Path) -> float:
    from hub.sinks.mllp import MllpSink
    from hub.store import open_store

    events = readings(n)
    with Peer("mllp") as port:
        rules = bench_rules({"hl7v2": {"host": "127.0.0.1", "port": port, "connections": connections,
                                       "batch_size": 1000, "flush_timeout_s": 600}})
        store = open_store(f"sqlite:///{folder / 'mllp.db'}")
        sink = MllpSink(rules, store, rules.sinks.hl7v2)
        started = time.perf_counter()
        for event in events:
            sink.add(event)
        await sink.flush()
        elapsed = time.perf_counter() - started
        delivered = sum(c.get("delivered") for c in store.counts() if c.sink == "hl7v2")
        await sink.close()
        store.close()
    if delivered != n:
        raise RuntimeError(f"bench sinks: only {delivered} of {n} HL7 messages were ACKed")
    return n / elapsed


async def measure_fhir(n: int, folder: Path) -> float:
    from hub.sinks.fhir_client import FhirSink
    from hub.store import open_store

    events = readings(n)
    with Peer("fhir") as port:
        rules = bench_rules({"fhir": {"base_url": f"http://127.0.0.1:{port}/fhir", "batch_size": 100,
                                      "connections": 2, "flush_timeout_s": 600}})
        store = open_store(f"sqlite:///{folder / 'fhir.db'}")
        sink = FhirSink(rules, store, rules.sinks.fhir)
        started = time.perf_counter()
        for event in events:
            sink.add(event)
        await sink.flush()
        elapsed = time.perf_counter() - started
        delivered = sum(c.get("delivered") for c in store.counts() if c.sink == "fhir")
        await sink.close()
        store.close()
    if delivered != n:
        raise RuntimeError(f"bench sinks: only {delivered} of {n} Observations were created")
    return n / elapsed


def measure_ledger(url: str, rows: int, batch: int = 500) -> float:
    from hub.store import DELIVERED, Outcome, open_store
    from hub.store.engine import drop_schema

    schema = f"devsync_bench_{uuid.uuid4().hex[:10]}"
    store = open_store(url, schema=schema)
    try:
        outcomes = [Outcome(f"ev-{i:08d}", "hl7v2", DELIVERED, f"c{i // 4:08d}", detail="ACK AA")
                    for i in range(rows)]
        started = time.perf_counter()
        for start in range(0, rows, batch):
            store.record_outcomes(outcomes[start:start + batch])
        elapsed = time.perf_counter() - started
    finally:
        drop_schema(store.engine, schema)
        store.engine.dispose()
    return rows / elapsed
