"""Device clocks jumping by an hour, through the real MLLP listener into the embedded runtime.

Two bedside monitors send a PCD-01 ORU^R01 (heart rate and SpO2, OBX-14 at whole seconds) every 20 s of
hub time over MLLP; an ADT feed admits a patient to each bed first. Monitor MON-01's clock is right for
60 minutes, jumps +1 h for 20 minutes (a DST change or a bad NTP step), then jumps back -1 h; monitor MON-02's
clock is 1 h ahead from its first message on. The hub's clock is a stepped clock shared by the connector
(received_time) and the runtime (`now`), so 130 minutes of hub time run in seconds; network delays are
0.05-0.4 s.

Proves (hub/normalise/clocks.py, hub/ordering/dedupe.py, hub/ordering/reorder.py, hub/pipeline.py):
- every reading the hub acknowledged is charted once (nothing dropped, parked or dead-lettered), including
  the readings MON-01 takes after its clock went back under device times it had already used (PCD-01
  event ids come from the device time: stage 1 tells them from resends by the clock offset and re-keys them);
- corrected times are within clocks.min_correction_s of the true time, all of them: readings suspected of a
  backward jump wait until the next readings confirm it, then take the new offset;
- the jump readings are flagged clock-jump, and nothing is flagged late that arrived in order;
- no (patient, metric, window) is charted twice; no reading is held anywhere near an hour.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import hl7
import pytest
from fault_report import FaultCounts, report
from hl7.mllp import open_hl7_connection

from connectors.hl7.inventory import DeviceDirectory
from connectors.mllp import MllpConnector
from hub.events import Event, EventKind, PatientBinding, Quality
from hub.render import RenderContext, build_oru_r01
from hub.render.escape import hl7_time
from hub.render.samples import sample_event
from hub.rules.connectors import MllpListener
from hub.rules.load import load_rules
from hub.runtime.embedded import EmbeddedRuntime
from tests.support.stores import sqlite_store

pytestmark = [pytest.mark.integration, pytest.mark.faults]

ROOT = Path(__file__).resolve().parents[2]
RULES = load_rules(ROOT / "rules")
HOUR = 3600.0
T0 = 1_800_000_000.0  # hub time of the first reading (a multiple of STEP_S)
STEP_S = 20.0
STEPS = 390  # 130 minutes of hub time
FORWARD_AT, BACK_AT = 180, 240  # MON-01: +1 h from step 180, back to the right time at step 240
MAX_HOLD_S = 120.0  # received -> charted; the profiles' windows add up to seconds, never to an hour
BEDS = {"MON-01": ("ICU1^^BED01", "MRN7001"), "MON-02": ("ICU1^^BED02", "MRN7002")}
METRICS = (("heart-rate", lambda k: 60 + k % 47), ("spo2", lambda k: 90 + k % 7))  # values change step to step


def clock_skew(device_id: str, step: int) -> float:
    """Device clock minus hub time at a step: MON-02 an hour ahead throughout, MON-01 +1 h for 20 minutes."""
    if device_id == "MON-02":
        return HOUR
    return HOUR if FORWARD_AT <= step < BACK_AT else 0.0


class HubClock:
    """The hub's clock, stepped by the scenario (the connector's received_time and the runtime's now)."""

    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Sent:
    true_time: dict[str, float] = field(default_factory=dict)  # MSH-10 -> hub time the readings were taken
    step: dict[str, int] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)  # what the connector handed to the runtime (AA'd)

    def readings(self) -> list[Event]:
        return [e for e in self.events if e.kind is EventKind.NUMERIC]


def adt_admit(bed: str, mrn: str, control_id: str, at: float) -> str:
    return (f"MSH|^~\\&|ADT|HOSP|DEVSYNC|HUB|{hl7_time(at)}||ADT^A01^ADT_A01|{control_id}|P|2.6\r"
            f"EVN|A01|{hl7_time(at)}\rPID|||{mrn}^^^^MR||Clock^Test\rPV1||I|{bed}||||||||||||||||V{mrn}")


def device_message(ctx: RenderContext, device_id: str, step: int, device_time: float) -> str:
    """The monitor's PCD-01 for one step, stamped with its own (possibly jumped) clock."""
    bed, mrn = BEDS[device_id]
    shown = PatientBinding(patient_id=mrn, location=bed.replace("^^", "-"))
    readings = [sample_event(RULES, device_id=device_id, metric=metric, value=value(step), t=device_time,
                             patient=shown, seq=step).with_changes(device_time=device_time, corrected_time=device_time)
                for metric, value in METRICS]
    return build_oru_r01(readings, ctx, control_id=f"{device_id}-{step}", message_time=device_time)


async def send(reader, writer, message: str) -> str:
    writer.writemessage(hl7.parse(message))
    ack = await asyncio.wait_for(reader.readmessage(), 10)
    return str(ack.segment("MSA")[1])


async def processed(runtime: EmbeddedRuntime, count: int) -> None:
    """Wait until the runtime has run stage 1 and 2 on `count` events (bounded)."""
    for _ in range(5000):
        if sum(runtime.summary.events_in.values()) >= count:
            return
        await asyncio.sleep(0.002)
    raise AssertionError(f"runtime processed {sum(runtime.summary.events_in.values())} of {count} events")


@pytest.mark.timeout(180)
def test_device_clock_jumps_of_an_hour_are_corrected_and_lose_nothing(tmp_path):
    with sqlite_store(tmp_path) as (store, _url, _schema):
        charted, sent, runtime = asyncio.run(_scenario(store))
        _check_and_report(charted, sent, runtime, store)


async def _scenario(store) -> tuple[list[tuple[Event, float]], Sent, EmbeddedRuntime]:
    clock = HubClock(T0 - 60)
    charted: list[tuple[Event, float]] = []  # (observation, hub time it was handed to the sinks)
    runtime = EmbeddedRuntime(RULES, store=store, sinks=[], clock=clock, tick_s=0.01,
                              on_observation=lambda obs: charted.append((obs, clock.now)))
    sent = Sent()

    async def accepted(event: Event) -> None:  # the connector's emit target: record, then hand over
        await runtime.emit(event)
        sent.events.append(event)

    connector = MllpConnector(MllpListener(port=0), DeviceDirectory(RULES), clock=clock)
    run = asyncio.create_task(runtime.run())
    await connector.start(accepted)
    links = {}
    try:
        adt = await open_hl7_connection("127.0.0.1", connector.port)
        for n, (bed, mrn) in enumerate(BEDS.values()):
            assert await send(*adt, adt_admit(bed, mrn, f"ADT{n}", T0 - 3 * HOUR)) == "AA"
        adt[1].close()
        links = {d: await open_hl7_connection("127.0.0.1", connector.port) for d in BEDS}
        await _monitors_send(links, clock, sent, runtime)
        clock.now = T0 + STEPS * STEP_S  # one more step of hub time: the timer closes the last windows
        await asyncio.sleep(0.1)
    finally:
        for _, writer in links.values():
            writer.close()
        await connector.stop()
        await runtime.stop()
        await asyncio.wait_for(run, 30)
        await runtime.finish()
    return charted, sent, runtime


async def _monitors_send(links: dict, clock: HubClock, sent: Sent, runtime: EmbeddedRuntime) -> None:
    ctx = RenderContext.from_rules(RULES)
    rng = random.Random(7)
    for step in range(STEPS):
        taken = T0 + step * STEP_S
        for device_id, link in links.items():
            clock.now = taken + rng.uniform(0.05, 0.4)  # network delay
            control_id = f"{device_id}-{step}"
            message = device_message(ctx, device_id, step, taken + clock_skew(device_id, step))
            assert await send(*link, message) == "AA", control_id
            sent.true_time[control_id], sent.step[control_id] = taken, step
        await processed(runtime, len(sent.events))


# ---------------- checks ----------------

def reading_key(e: Event) -> tuple[str, str]:
    """A reading's identity for the counts: the message that carried it and its code. Not the event id:
    after MON-01's clock goes back it reuses device times, and stage 1 re-keys those new readings."""
    return (e.provenance.raw_ref, str(e.code_sent))


def _check_and_report(charted: list[tuple[Event, float]], sent: Sent, runtime: EmbeddedRuntime, store) -> None:
    readings = sent.readings()
    assert len(readings) == STEPS * len(BEDS) * len(METRICS), "not every reading was acknowledged"
    by_key = defaultdict(list)
    for obs, at in charted:
        by_key[reading_key(obs)].append((obs, at))
    sent_by_key = {reading_key(e): e for e in readings}
    assert len(sent_by_key) == len(readings)
    delivered = sent_by_key.keys() & by_key.keys()
    errors = {k: abs(by_key[k][0][0].corrected_time - sent.true_time[k[0]]) for k in delivered}
    tolerance = RULES.clocks.min_correction_s
    wrong_time = {k for k, err in errors.items() if err > tolerance}
    windows = Counter((o.patient.patient_id, o.metric, _window(o)) for o, _ in charted)
    flagged_jump = {reading_key(o) for o, _ in charted if Quality.CLOCK_JUMP in o.quality}
    flagged_late = [o for o, _ in charted if Quality.LATE in o.quality]
    rekeyed = [o for o, _ in charted if o.event_id != sent_by_key[reading_key(o)].event_id]
    holds = [at - o.received_time for o, at in charted]
    reasons = Counter(_why_not_charted(e.event_id, store) for k, e in sent_by_key.items() if k not in by_key)
    s = runtime.summary
    violations = {
        "charted at a wrong time (beyond clocks.min_correction_s)": len(wrong_time),
        "windows charted twice": sum(1 for n in windows.values() if n > 1),
        "forward-jump readings not flagged clock-jump": len(_first_after(readings, sent, "MON-01", FORWARD_AT)
                                                           - flagged_jump),
        "backward-jump readings (held until confirmed) not flagged clock-jump": len(_backward_jump_readings(
            readings, sent) - flagged_jump),
        "MON-02 readings flagged clock-jump (its offset never changed)": sum(
            1 for o, _ in charted if o.device.id == "MON-02" and Quality.CLOCK_JUMP in o.quality),
        "readings flagged late that arrived in order": len(flagged_late),
        f"readings held longer than {MAX_HOLD_S:g} s": sum(1 for h in holds if h > MAX_HOLD_S),
    }
    for what, n in violations.items():
        print(f"[clock-jump] {what}: {n}")
    print(f"[clock-jump] not charted, by reason: {dict(reasons)}")
    report(FaultCounts(
        "device-clock-jump-1h", sent=len(readings), delivered=len(delivered), parked=s.parked_now, dlq=s.dlq,
        duplicated=sum(len(v) - 1 for v in by_key.values()),
        figures={"hub_minutes": STEPS * STEP_S / 60, "dropped_as_duplicate": s.duplicates,
                 "rekeyed_after_clock_went_back": len(rekeyed),
                 "max_correction_error_s": round(max(errors.values(), default=0), 3),
                 "flagged_clock_jump": len(flagged_jump), "flagged_late": len(flagged_late),
                 "double_charted_windows": violations["windows charted twice"],
                 "max_hold_s": round(max(holds), 1)}))
    assert not any(violations.values()), violations
    assert rekeyed, "the scenario should make MON-01 reuse device times (else it does not test re-keying)"


def _window(obs: Event) -> float:
    window = RULES.profile(obs.data_class).resolve_window_s
    return obs.effective_time // window * window


def _first_after(readings: list[Event], sent: Sent, device_id: str, step: int) -> set[tuple[str, str]]:
    """The device's readings at `step` (the first ones after a jump), one per stream."""
    return {reading_key(e) for e in readings if e.device.id == device_id and sent.step[e.provenance.raw_ref] == step}


def _backward_jump_readings(readings: list[Event], sent: Sent) -> set[tuple[str, str]]:
    """MON-01's readings from its backward jump until the jump_confirm_samples-th confirms it: held by stage 1,
    then corrected with the new offset and flagged clock-jump."""
    waiting = range(BACK_AT, BACK_AT + RULES.clocks.jump_confirm_samples)
    return {reading_key(e) for e in readings if e.device.id == "MON-01" and sent.step[e.provenance.raw_ref] in waiting}
