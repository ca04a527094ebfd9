"""Fault: a code-blue burst, 10x the normal rate for 60 s with alarms mixed in, alarm latency tracked.

End to end with real sockets: `devsync run --rules ... --mllp-port P` (the embedded runtime) as a
process; 30 bedside monitors are python-hl7 MLLP clients (one connection for vitals, one for
alarms per bed) sending IHE PCD-01 ORU^R01 vitals (10 readings per message) and IHE PCD-04 ORU^R40
alarms (start, then end 1.5 s later); an ADT feed admits one patient per bed first. The sinks are
two python-hl7 MLLP servers (tests/support/mllp_ehr.py): the EHR (hl7v2, PCD-01) and the alarm
manager (pcd04), in a process of their own. The devices' messages are built with the hub's own
renderers, as a PCD-01/04 compliant device would send them.

Rates: normal = 30 beds x one message per 5 s (2 readings/s per bed, 60/s in all) and one alarm per
bed per 30 s; the burst = 10x both: 2 messages/s per bed (600 readings/s) and one alarm per bed per
3 s (10 alarms/s), for 60 s; then normal again for 10 s. The hub's sinks use 16 MLLP connections
each (patients spread over them). On the shared 2-core machine this is about what the embedded
runtime sustains: at 900 readings/s (5 messages/s per bed) it fell behind, the backlog
took about a minute to drain and the alarm latency p50 during the burst was about 21 s.
Rules: the shipped ones with a 30-bed ward, conflict resolution off for vitals (resolve_window_s 0,
so every reading is its own observation and can be counted) and clock correction off (device
clocks are right here; so OBX-14 at the EHR is the device's time and identifies the reading).

Counted at the far ends, after their documented dedupe by MSH-10 (MllpEhr.charted):
- vitals: one reading = (PID-3 patient, OBX-3 MDC code, OBX-14 time); delivered = sent readings
  charted; duplicated = readings charted more than once (in two accepted messages) or never sent;
- alarms: one alarm event = (OBR-3 alarm id, event phase facet); same rules. Every alarm must arrive.
Figures: alarm latency (device send -> first arrival at the alarm manager) p50/p99/max before,
during and after the burst, and vital latency (send -> arrival at the EHR) p50/p99. Performance is
reported, not asserted; re-sent messages (same MSH-10) are the `resends_*` figures.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import hl7
import pytest
import yaml
from edge_faults_support import wait_until
from fault_report import FaultCounts, report
from hl7.mllp import open_hl7_connection
from kafka_faults_support import effect_counts

from hub.bench import percentile
from hub.events import AlarmPhase, AlarmState, PatientBinding
from hub.render import RenderContext, build_oru_r01
from hub.render.escape import hl7_time
from hub.render.pcd04 import build_oru_r40
from hub.render.samples import sample_alarm, sample_event
from hub.rules.load import load_rules
from hub.testing.broker import free_port
from tests.support.mllp_ehr import MllpEhr

pytestmark = [pytest.mark.integration, pytest.mark.faults]
REPO = Path(__file__).resolve().parents[2]
DEVSYNC = str(Path(sys.executable).parent / "devsync")
BEDS = 30
NORMAL_S, BURST_S, AFTER_S = 10.0, 60.0, 10.0
NORMAL_MSGS_PER_S, BURST_FACTOR = 0.2, 10
NORMAL_ALARM_EVERY_S, BURST_ALARM_EVERY_S, ALARM_END_AFTER_S = 30.0, 3.0, 1.5
METRICS = (("heart-rate", 72.0), ("spo2", 97.0), ("respiratory-rate", 16.0), ("temperature", 36.8),
           ("perfusion-index", 3.1), ("bp-systolic", 121.0), ("bp-diastolic", 78.0), ("bp-mean", 92.0),
           ("qt-interval", 380.0), ("qtc-interval", 410.0))
ACK_TIMEOUT_S = 30.0
SINK_CONNECTIONS = 16  # MLLP connections to the EHR and to the alarm manager (patients are spread over them)


# ---------------- the schedule (pure) ----------------

def phase_of(offset: float) -> str:
    return "before" if offset < NORMAL_S else "during" if offset < NORMAL_S + BURST_S else "after"


def rate_at(offset: float, normal: float) -> float:
    return normal * BURST_FACTOR if phase_of(offset) == "during" else normal


def send_offsets(interval_at, start: float, end: float) -> list[float]:
    """Offsets from start to end, each `interval_at(offset)` after the previous one."""
    out, t = [], start
    while t < end:
        out.append(t)
        t += interval_at(t)
    return out


def vital_offsets(bed: int) -> list[float]:
    stagger = bed / BEDS / NORMAL_MSGS_PER_S  # beds spread over the second
    return send_offsets(lambda t: 1.0 / rate_at(t, NORMAL_MSGS_PER_S), stagger, NORMAL_S + BURST_S + AFTER_S)


def alarm_offsets(bed: int) -> list[tuple[float, AlarmPhase, int]]:
    """(offset, phase, alarm number): each alarm starts, then ends ALARM_END_AFTER_S later; beds staggered."""
    every = (lambda t: BURST_ALARM_EVERY_S if phase_of(t) == "during" else NORMAL_ALARM_EVERY_S)
    starts = send_offsets(every, bed * NORMAL_ALARM_EVERY_S / BEDS, NORMAL_S + BURST_S + AFTER_S - ALARM_END_AFTER_S)
    return sorted([(t, AlarmPhase.START, n) for n, t in enumerate(starts)]
                  + [(t + ALARM_END_AFTER_S, AlarmPhase.END, n) for n, t in enumerate(starts)])


# ---------------- the ward ----------------

def bed_name(bed: int) -> str:
    return f"BED{bed:02d}"


def patient_of(bed: int) -> PatientBinding:
    return PatientBinding(patient_id=f"MRN{bed:04d}", encounter_id=f"V{bed:04d}", location=f"ICU1-{bed_name(bed)}")


def ward_rules(tmp_path: Path, ehr_port: int, alarm_port: int) -> Path:
    """The shipped rules with a 30-bed ward, the two MLLP sinks, resolution and clock correction off."""
    folder = tmp_path / "rules"
    shutil.copytree(REPO / "rules", folder)
    devices = [{"id": f"MON-{bed:02d}", "type": "multi-parameter-monitor", "location": f"ICU1-{bed_name(bed)}",
                "eui64": f"0600dc7500{bed:06x}"} for bed in range(1, BEDS + 1)]
    ward = {"version": 1, "devices": devices, "association": {"encounter_source": "hl7-adt"}}
    (folder / "ward.yaml").write_text(yaml.safe_dump(ward))
    (folder / "connectors.yaml").write_text(yaml.safe_dump({"version": 1, "connectors": {
        "mllp": {"host": "127.0.0.1", "port": 2575}}}))
    profiles = yaml.safe_load((folder / "profiles.yaml").read_text())
    profiles["sync_profiles"]["vital"]["resolve_window_s"] = 0
    (folder / "profiles.yaml").write_text(yaml.safe_dump(profiles))
    mllp = {"host": "127.0.0.1", "connections": SINK_CONNECTIONS, "max_batch_delay_s": 0.2, "ack_timeout_s": 5.0,
            "backoff": {"initial_s": 0.2, "max_s": 2.0}}
    (folder / "hub.yaml").write_text(yaml.safe_dump({
        "version": 1, "sinks": {"hl7v2": {**mllp, "port": ehr_port}, "pcd04": {**mllp, "port": alarm_port}},
        "clocks": {"apply_correction": False},
        "runtime": {"database_url": f"sqlite:///{tmp_path / 'hub.db'}", "metrics_port": 0}}))
    return folder


def adt_a01(bed: int) -> str:
    p = patient_of(bed)
    return (f"MSH|^~\\&|ADT|HOSP|DEVSYNC|HUB|20261121100000||ADT^A01^ADT_A01|ADT{bed:04d}|P|2.6\r"
            f"EVN|A01|20261121090000\rPID|||{p.patient_id}^^^^MR||Patient^Bed{bed}\r"
            f"PV1||I|ICU1^^{bed_name(bed)}||||||||||||||||{p.encounter_id}\r")


# ---------------- the devices ----------------

@dataclass
class Sent:
    vitals: dict[tuple, float] = field(default_factory=dict)  # (patient, code, OBX-14) -> send time
    vital_phase: dict[tuple, str] = field(default_factory=dict)
    alarms: dict[tuple, float] = field(default_factory=dict)  # (alarm id, phase) -> send time
    alarm_phase: dict[tuple, str] = field(default_factory=dict)
    not_accepted: list[str] = field(default_factory=list)  # ACKs other than AA


class Device:
    """One MLLP connection of a bed's monitor: send, wait for the ACK, note what was accepted."""

    def __init__(self, port: int):
        self.port = port
        self.reader = self.writer = None

    async def open(self) -> Device:
        self.reader, self.writer = await open_hl7_connection("127.0.0.1", self.port)
        return self

    async def send(self, message: str) -> str:
        self.writer.writemessage(message)
        await self.writer.drain()
        return str(await asyncio.wait_for(self.reader.readmessage(), ACK_TIMEOUT_S))

    def close(self) -> None:
        self.writer.close()


def device_time(last: float) -> float:
    """Now in whole ms, strictly after the previous message of the same device (readings stay distinct)."""
    return max(round(time.time(), 3), round(last + 0.001, 3))


async def run_vitals(bed: int, port: int, rules, ctx, t0: float, sent: Sent) -> None:
    device, patient, last = await Device(port).open(), patient_of(bed), 0.0
    try:
        for n, offset in enumerate(vital_offsets(bed)):
            await asyncio.sleep(max(0.0, t0 + offset - time.time()))
            last = t = device_time(last)
            events = [sample_event(rules, device_id=f"MON-{bed:02d}", metric=m, value=base + n % 7, t=t,
                                   patient=patient, seq=n) for m, base in METRICS]
            sent_at = await send_accepted(device, build_oru_r01(events, ctx, control_id=f"V{bed:02d}-{n}",
                                                                message_time=t), sent)
            if sent_at is None:
                continue
            for e in events:
                key = (patient.patient_id, str(e.mdc_code), hl7_time(t))
                sent.vitals[key], sent.vital_phase[key] = sent_at, phase_of(offset)
    finally:
        device.close()


async def send_accepted(device: Device, message: str, sent: Sent) -> float | None:
    """Send one message; its send time if the hub answered AA, else None (the ACK kept in sent.not_accepted)."""
    sent_at = time.time()
    ack = await device.send(message)
    if "MSA|AA|" not in ack:
        sent.not_accepted.append(ack)
        return None
    return sent_at


async def run_alarms(bed: int, port: int, rules, ctx, t0: float, sent: Sent) -> None:
    device, last = await Device(port).open(), 0.0
    try:
        for n, (offset, phase, number) in enumerate(alarm_offsets(bed)):
            await asyncio.sleep(max(0.0, t0 + offset - time.time()))
            last = t = device_time(last)
            alarm_id = f"CB{bed:02d}-{number}"
            state = AlarmState.ACTIVE if phase is AlarmPhase.START else AlarmState.INACTIVE
            event = sample_alarm(rules, device_id=f"MON-{bed:02d}", condition="196648^MDC_EVT_HI", text="HR HIGH",
                                 source_metric="heart-rate", value=150.0, t=t, patient=None, alarm_id=alarm_id,
                                 phase=phase, state=state, seq=n)
            sent_at = await send_accepted(device, build_oru_r40(event, ctx, control_id=f"A{bed:02d}-{n}",
                                                                message_time=t), sent)
            if sent_at is None:
                continue
            key = (alarm_id, phase.value)
            sent.alarms[key], sent.alarm_phase[key] = sent_at, phase_of(offset)
    finally:
        device.close()


# ---------------- the far ends ----------------

class TimedEhr(MllpEhr):
    """MllpEhr noting when each control id first arrived (its script hook runs on every arrival)."""

    def __init__(self):
        super().__init__(script=self._arrived)
        self.first_arrival: dict[str, float] = {}

    def _arrived(self, control_id: str, _n: int) -> tuple:
        self.first_arrival.setdefault(control_id, time.time())
        return ("AA",)


class FarEnd:
    """What one MLLP server charted, as (key, first arrival) pairs; each message is parsed once."""

    def __init__(self, server: TimedEhr, keys_of):
        self.server = server
        self.keys_of = keys_of  # parsed message -> the keys it charts
        self._parsed = 0

    def new_charts(self) -> list[tuple[tuple, float]]:
        """The charts made since the last call."""
        out = []
        for control_id in self.server.order[self._parsed:]:
            arrival = self.server.first_arrival[control_id]
            out += [(key, arrival) for key in self.keys_of(hl7.parse(self.server.charted[control_id].message))]
        self._parsed = len(self.server.order)
        return out

    def resends(self) -> int:
        return len(self.server.received) - len(self.server.charted)


def serve_far_ends(conn) -> None:
    """Child process: the EHR and the alarm manager, on their own CPU time (so that their ACKs, which
    the hub's checkpoint waits for, are not slowed down by the 60 device connections of the test)."""
    asyncio.run(_serve_far_ends(conn))


async def _serve_far_ends(conn) -> None:
    ehr, manager = await TimedEhr().start(), await TimedEhr().start()
    ends = [FarEnd(ehr, vital_keys), FarEnd(manager, alarm_keys)]
    conn.send((ehr.port, manager.port))
    try:
        while (request := await asyncio.to_thread(conn.recv)) != "stop":
            assert request == "charts"
            conn.send([(end.new_charts(), end.resends()) for end in ends])
    finally:
        await ehr.stop()
        await manager.stop()


class FarEnds:
    """Parent side: asks the child for new charts and keeps them."""

    def __init__(self):
        self.conn, child = multiprocessing.Pipe()
        self.process = multiprocessing.get_context("spawn").Process(target=serve_far_ends, args=(child,), daemon=True)
        self.process.start()
        if not self.conn.poll(60):
            raise RuntimeError("the EHR / alarm manager process did not start")
        self.ehr_port, self.alarm_port = self.conn.recv()
        self.vitals: list[tuple[tuple, float]] = []
        self.alarms: list[tuple[tuple, float]] = []
        self.resends = (0, 0)

    def update(self) -> FarEnds:
        self.conn.send("charts")
        (vitals, ehr_resends), (alarms, alarm_resends) = self.conn.recv()
        self.vitals += vitals
        self.alarms += alarms
        self.resends = (ehr_resends, alarm_resends)
        return self

    def stop(self) -> None:
        if self.process.is_alive():
            self.conn.send("stop")
            self.process.join(10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


def vital_keys(message) -> list[tuple]:
    """(patient, MDC code, OBX-14) of each numeric OBX."""
    patient = str(message.segment("PID")(3)(1)(1))
    return [(patient, str(obx(3)(1)(1)), str(obx(14))) for obx in message.segments("OBX") if str(obx(2)) == "NM"]


def alarm_keys(message) -> list[tuple]:
    """(alarm id, event phase) of an alarm report."""
    phase = next(str(obx(5)) for obx in message.segments("OBX") if str(obx(3)(1)(2)) == "MDC_ATTR_EVENT_PHASE")
    return [(str(message.segment("OBR")(3)(1)(1)), phase)]


def latency_figures(prefix: str, sent_at: dict, phase: dict, arrived: list[tuple[tuple, float]],
                    phases=("before", "during", "after")) -> dict:
    """p50/p99/max of (first arrival - send) per phase, in seconds."""
    first: dict[tuple, float] = {}
    for key, at in arrived:
        first.setdefault(key, at)
    by_phase = defaultdict(list)
    for key, at in first.items():
        if key in sent_at:
            by_phase[phase[key]].append(at - sent_at[key])
    figures = {}
    for name in phases:
        values = by_phase.get(name, [])
        figures.update({f"{prefix}_{name}_n": len(values),
                        f"{prefix}_{name}_p50_s": round(percentile(values, 50), 3),
                        f"{prefix}_{name}_p99_s": round(percentile(values, 99), 3),
                        f"{prefix}_{name}_max_s": round(max(values, default=float("nan")), 3)})
    return figures


# ---------------- the scenario ----------------

def start_hub(rules_dir: Path, port: int, out_path: Path, err_path: Path) -> subprocess.Popen:
    """`devsync run` with the MLLP listener on `port`, output to files (a full pipe would stall it)."""
    with out_path.open("wb") as out, err_path.open("wb") as err:
        return subprocess.Popen([DEVSYNC, "run", "--rules", str(rules_dir), "--mllp-port", str(port),
                                 "--metrics-port", "0", "--log-level", "WARNING"], stdout=out, stderr=err,
                                cwd=out_path.parent, env={**os.environ, "PYTHONUNBUFFERED": "1"})


async def wait_for_text(path: Path, text: str, proc: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if text in path.read_text(errors="replace"):
            return
        assert proc.poll() is None, f"devsync run exited early: {path.read_text(errors='replace')[-2000:]}"
        await asyncio.sleep(0.1)
    raise AssertionError(f"no '{text}' from devsync run within {timeout_s}s")


@pytest.mark.timeout(200)
def test_code_blue_burst_delivers_every_alarm_and_vital_once(tmp_path):
    asyncio.run(_scenario(tmp_path))


async def _scenario(tmp_path: Path) -> None:
    started = time.monotonic()
    far = FarEnds()
    sent = Sent()
    proc = None
    try:
        rules_dir = ward_rules(tmp_path, far.ehr_port, far.alarm_port)
        rules = load_rules(rules_dir)
        ctx = RenderContext.from_rules(rules)
        port = free_port()
        out_path, err_path = tmp_path / "run.out", tmp_path / "run.err"
        proc = await asyncio.to_thread(start_hub, rules_dir, port, out_path, err_path)
        await wait_for_text(out_path, "connector(s) up", proc, 60)
        adt = await Device(port).open()
        acks = [await adt.send(adt_a01(bed)) for bed in range(1, BEDS + 1)]
        adt.close()
        assert all("MSA|AA|" in ack for ack in acks), acks
        await asyncio.sleep(1.0)  # the admissions are processed before the first reading

        t0 = time.time() + 0.5
        await asyncio.gather(*(run_vitals(bed, port, rules, ctx, t0, sent) for bed in range(1, BEDS + 1)),
                             *(run_alarms(bed, port, rules, ctx, t0, sent) for bed in range(1, BEDS + 1)))
        sending_s = time.time() - t0

        def all_charted() -> bool:
            far.update()
            return set(sent.alarms) <= {k for k, _ in far.alarms} and set(sent.vitals) <= {k for k, _ in far.vitals}

        await wait_until(all_charted, 30)
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 60)
        far.update()
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        far.stop()
    assert proc.returncode == 0, err_path.read_text(errors="replace")[-2000:]
    assert not sent.not_accepted, f"{len(sent.not_accepted)} device messages not accepted: {sent.not_accepted[:3]}"

    vital_effect = effect_counts(sent.vitals, [k for k, _ in far.vitals])
    alarm_effect = effect_counts(sent.alarms, [k for k, _ in far.alarms])
    assert not alarm_effect.missing, f"{len(alarm_effect.missing)} alarms never reached the alarm manager"
    per_phase = defaultdict(int)
    for key in sent.vitals:
        per_phase[sent.vital_phase[key]] += 1
    report(FaultCounts(
        "code-blue-burst-10x-60s", sent=len(sent.vitals) + len(sent.alarms),
        delivered=vital_effect.delivered + alarm_effect.delivered,
        duplicated=vital_effect.duplicated + alarm_effect.duplicated,
        figures={"vitals_sent": len(sent.vitals), "vitals_charted": vital_effect.delivered,
                 **{f"vitals_sent_{name}": per_phase[name] for name in ("before", "during", "after")},
                 "alarms_sent": len(sent.alarms), "alarms_charted": alarm_effect.delivered,
                 **latency_figures("alarm_latency", sent.alarms, sent.alarm_phase, far.alarms),
                 **{k: v for k, v in latency_figures("vital_latency", sent.vitals, sent.vital_phase, far.vitals,
                                                      ("during",)).items() if not k.endswith("_n")},
                 "resends_ehr": far.resends[0], "resends_alarm_manager": far.resends[1],
                 "sending_s": round(sending_s, 1), "wall_s": round(time.monotonic() - started, 1)}))
