"""Shared parts of the sink fault scenarios (EHR outage, slow ACKs, PostgreSQL restart).

- `Hub`: the embedded runtime with the HL7 v2 (MLLP) sink and a store, as `devsync run` wires it.
- `WardFeed`: monitors of a ward bound to their patients by ADT, then one reading per metric per
  monitor every `period_s`, emitted into the runtime at a steady rate (device time = wall time).
- `charted_readings(ehr)`: what the EHR charted, read back from the messages it accepted
  (patient, MDC code, observation time), in charting order: the far-end count.
- `exactly_once_counts(...)`: the FaultCounts of a scenario, plus the order and ledger checks.
- `PrivatePostgres`: a PostgreSQL server of the test's own (initdb, pg_ctl) that it may stop
  and start without touching the machine's shared one.
"""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import hl7
from fault_report import FaultCounts
from sqlalchemy import func, select

from hub.runtime.embedded import EmbeddedRuntime
from hub.sinks.mllp import MllpSink
from hub.store import DELIVERED, Store
from hub.store.models import ledger
from hub.testing.factories import association_event, numeric_event
from tests.integration.edge.edge_support import free_port
from tests.support.mllp_ehr import MllpEhr
from tests.support.sink_events import rules_with

# One reading per metric per monitor every 2 s: the vital resolve window is 2 s, so every reading
# wins its own bucket and becomes exactly one observation (nothing is resolved away).
PERIOD_S = 2.0
METRICS = {"147842": ("/min", 80.0), "151562": ("/min", 16.0), "150456": ("%", 97.0)}  # HR, RR, SpO2
RUNTIME_STOP_S = 60.0  # bound on draining the runtime at the end of a scenario
# The HL7 sink tuned for scenarios measured in seconds (the defaults wait 10-30 s per step).
MLLP_SETTINGS = {"connections": 4, "ack_timeout_s": 2.0, "connect_timeout_s": 1.0, "flush_timeout_s": 5.0,
                 "max_batch_delay_s": 0.2, "backoff": {"initial_s": 0.2, "max_s": 2.0}}


@dataclass(frozen=True, order=True)
class Reading:
    """One observation as the EHR sees it: patient (PID-3), MDC code (OBX-3), time (OBX-14, s)."""

    patient_id: str
    code: str
    time: int


def patient_of_bed(bed: int) -> str:
    return f"MRN{bed:04d}"


# ---- the hub under test ----

@dataclass
class Hub:
    """Embedded runtime + MLLP sink + store, started and stopped the way `devsync run` does."""

    runtime: EmbeddedRuntime
    sink: MllpSink
    store: Store
    task: asyncio.Task | None = None
    observations: list = field(default_factory=list)

    @classmethod
    def start(cls, store: Store, ehr_port: int, **mllp_settings) -> Hub:
        rules = rules_with(sinks={"hl7v2": {"host": "127.0.0.1", "port": ehr_port, **mllp_settings}})
        sink = MllpSink(rules, store, rules.sinks.hl7v2)
        observations: list = []
        runtime = EmbeddedRuntime(rules, store=store, sinks=[sink], on_observation=observations.append)
        return cls(runtime, sink, store, asyncio.create_task(runtime.run()), observations)

    async def stop(self) -> None:
        """Stop taking input, drain every held event, flush, close (bounded; a stuck hub fails the test)."""
        try:
            await self.runtime.stop()
            await asyncio.wait_for(asyncio.shield(self.task), RUNTIME_STOP_S)
            await asyncio.wait_for(self.runtime.finish(), RUNTIME_STOP_S)
        finally:
            if not self.task.done():
                self.task.cancel()
            await self.sink.close()


# ---- the steady input ----

@dataclass
class WardFeed:
    """Readings from the monitors MON-01.. of `beds` beds (at most 9) every `period_s`, emitted into the
    runtime in real time; `sent` lists them as the EHR should chart them."""

    runtime: EmbeddedRuntime
    beds: int = 8
    period_s: float = PERIOD_S
    sent: list[Reading] = field(default_factory=list)

    async def bind_patients(self) -> None:
        """ADT: bed k -> patient MRN000k (before any reading, so nothing is parked)."""
        admitted = time.time() - 3600
        for bed in range(1, self.beds + 1):
            await self.runtime.emit(association_event(f"ICU1-BED0{bed}", patient_of_bed(bed), t=admitted,
                                                      encounter_id=f"ENC-{bed}"))

    async def run_for(self, seconds: float) -> None:
        """Emit one round of readings every period_s for `seconds`, on a fixed grid (no drift)."""
        started = time.monotonic()
        first_time = float(int(time.time()) + 1)
        for tick in range(int(seconds / self.period_s)):
            await asyncio.sleep(max(0.0, started + tick * self.period_s - time.monotonic()))
            await self.emit_round(tick, first_time + tick * self.period_s)

    async def emit_round(self, tick: int, device_time: float) -> None:
        for bed in range(1, self.beds + 1):
            for code, (unit, base) in METRICS.items():
                await self.runtime.emit(numeric_event(f"MON-0{bed}", code, base + tick % 5, unit, seq=tick,
                                                      t=device_time))
                self.sent.append(Reading(patient_of_bed(bed), code, int(device_time)))


# ---- the far end ----

def charted_readings(ehr: MllpEhr) -> list[Reading]:
    """Every numeric observation the EHR charted, in charting order (a resend of a known MSH-10 is
    charted once by the EHR, so it appears once here)."""
    readings = []
    for control_id in ehr.order:
        message = hl7.parse(ehr.charted[control_id].message)
        patient_id = str(message.segment("PID")(3)(1)(1))
        for obx in message.segments("OBX"):
            if str(obx(2)) == "NM":
                readings.append(Reading(patient_id, str(obx(3)(1)(1)), hl7_seconds(str(obx(14)))))
    return readings


def hl7_seconds(timestamp: str) -> int:
    """'20260101120000.0000+0000' -> epoch seconds."""
    return int(datetime.strptime(timestamp, "%Y%m%d%H%M%S.%f%z").timestamp())


def resends(ehr: MllpEhr) -> int:
    """Arrivals of a control id the EHR had already received (the hub's retries after a timeout or a cut)."""
    return len(ehr.received) - len({a.control_id for a in ehr.received})


def out_of_order(charted: list[Reading]) -> list[tuple[str, str]]:
    """(patient, code) series whose charted times do not strictly increase."""
    last: dict[tuple[str, str], int] = {}
    broken = []
    for reading in charted:
        key = (reading.patient_id, reading.code)
        if key in last and reading.time <= last[key]:
            broken.append(key)
        last[key] = reading.time
    return broken


def checkpoint_failures(caplog) -> list[str]:
    """The runtime's "checkpoint failed" errors (each names the error that paused the hub)."""
    return [r.getMessage() for r in caplog.records
            if r.name == "devsync.runtime" and "checkpoint failed" in r.getMessage()]


def ledger_delivered(store: Store, sink: str = "hl7v2") -> tuple[int, int]:
    """(observations whose current state is delivered, `delivered` rows in the append-only history)."""
    states = sum(c.get(DELIVERED) for c in store.counts() if c.sink == sink)
    with store.engine.connect() as conn:
        history = conn.execute(select(func.count()).select_from(ledger)
                               .where(ledger.c.sink == sink, ledger.c.status == DELIVERED)).scalar()
    return states, history


def exactly_once_counts(scenario: str, feed: WardFeed, ehr: MllpEhr, hub: Hub, figures: dict) -> FaultCounts:
    """Counts at the EHR by observation identity; also fails on anything charted that was never sent,
    on charting out of order, and when the hub's ledger disagrees with what the EHR charted."""
    charted = charted_readings(ehr)
    times_charted = Counter(charted)
    sent = set(feed.sent)
    assert len(sent) == len(feed.sent), "the feed sent one reading twice"
    assert not set(charted) - sent, f"charted but never sent: {sorted(set(charted) - sent)[:5]}"
    assert not out_of_order(charted), f"charted out of order: {out_of_order(charted)[:5]}"
    states, history = ledger_delivered(hub.store)
    assert states == history == len(times_charted), \
        f"ledger: {states} delivered ({history} history rows); EHR charted {len(times_charted)} observations"
    return FaultCounts(
        scenario,
        sent=len(feed.sent),
        delivered=len(times_charted),
        dlq=len(hub.store.dead_letters(status=None)),
        duplicated=sum(n - 1 for n in times_charted.values()),
        figures={"hub_observations": len(hub.observations), "messages_charted": len(ehr.charted),
                 "resends": resends(ehr), "ledger_delivered": states, **figures},
    )


def catch_up_s(hub: Hub, recovered_at: float, sink: str = "hl7v2") -> float:
    """Seconds from `recovered_at` (wall clock) until the ledger recorded as delivered the last of the
    observations read before it (the backlog); inf when one of them never was."""
    with hub.store.engine.connect() as conn:
        delivered_at = dict(conn.execute(select(ledger.c.event_id, ledger.c.at)
                                         .where(ledger.c.sink == sink, ledger.c.status == DELIVERED)).all())
    backlog = [e.event_id for e in hub.observations if e.device_time < recovered_at]
    return max(delivered_at.get(event_id, float("inf")) for event_id in backlog) - recovered_at


async def reopen(ehr: MllpEhr) -> None:
    """The EHR comes back on the same port, with what it charted before (same MllpEhr object)."""
    ehr.server = await hl7.mllp.start_hl7_server(ehr._client, "127.0.0.1", ehr.port)


# ---- a private PostgreSQL server ----

def postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    assert found, "PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin"
    return Path(found[-1]).parent


class PrivatePostgres:
    """A throw-away PostgreSQL cluster on 127.0.0.1:<free port>, trust auth, owned by this test.

    PostgreSQL refuses to run as root: under root the cluster lives in a folder owned by the
    `postgres` OS user (created in the system temp folder, since pytest's tmp_path is private to
    root) and every command runs through `runuser -u postgres --`."""

    def __init__(self):
        self.bin = postgres_bin()
        self.port = free_port()
        self.as_root = os.geteuid() == 0
        self.folder = Path(tempfile.mkdtemp(prefix="devsync-pg-"))
        self.data = self.folder / "data"
        if self.as_root:
            shutil.chown(self.folder, "postgres", "postgres")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 60) -> None:
        command = (["runuser", "-u", "postgres", "--"] if self.as_root else []) + [str(self.bin / args[0]), *args[1:]]
        done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, f"{' '.join(command)} failed: {done.stdout}{done.stderr}{self.log_tail()}"

    def log_tail(self) -> str:
        log = self.folder / "server.log"
        return log.read_text()[-2000:] if log.exists() else ""

    def init(self) -> PrivatePostgres:
        self._run("initdb", "-D", str(self.data), "--auth=trust", "--username=postgres", "--no-sync",
                  "--encoding=UTF8", "--locale=C")
        return self

    def start(self) -> PrivatePostgres:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.folder} -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.folder / "server.log"), "-o", options,
                  "-w", "-t", "60", "start")
        return self

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def destroy(self) -> None:
        try:
            if self.running():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
