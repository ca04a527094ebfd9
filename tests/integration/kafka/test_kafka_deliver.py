"""`devsync deliver`: the Kafka runtime's observations into the EHR, on the real test broker.

The observations topic is filled as the workers fill it (records keyed by patient, values the
canonical observation JSON), plus one record that is not an event. `devsync deliver` runs as a
process with the HL7 v2 sink pointed at python-hl7's MLLP server as the EHR (the first 40 ACKs
slowed to 50 ms, so the crash lands mid-stream). It is killed with SIGKILL once the EHR has charted a few
messages, more observations arrive, it is started again, and finally stopped with SIGTERM.
Checked: every observation charted exactly once (the EHR counts a resend of a known MSH-10
once, as interface engines do), the undecodable record in the dead-letter table with a reason
naming where it was, and a clean exit.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import hl7
import pytest
import yaml
from confluent_kafka import Producer

from hub.events import PatientBinding
from hub.render.escape import hl7_time
from hub.render.samples import T0, sample_event
from hub.rules.load import load_rules
from hub.runtime.kafka_settings import KafkaSettings, confluent_config
from hub.runtime.kafka_topics import TopicNames, ensure_topics, topic_specs
from hub.store import open_store
from tests.integration.kafka.kafka_helpers import isolated_rules
from tests.support.mllp_ehr import MllpEhr

pytestmark = pytest.mark.integration
DEVSYNC = str(Path(sys.executable).parent / "devsync")
PATIENTS = [PatientBinding(patient_id=f"MRN{k:04d}", encounter_id=f"ENC{k:04d}", location=f"ICU1-BED{k:02d}")
            for k in range(1, 5)]
METRICS = ("heart-rate", "spo2", "respiratory-rate")


def observations(first: int, count: int) -> list:
    rules = load_rules(Path(__file__).resolve().parents[3] / "rules")
    return [sample_event(rules, metric=METRICS[i % 3], value=60.0 + i % 40, t=T0 + 60 * i,
                         patient=PATIENTS[i % len(PATIENTS)], seq=i) for i in range(first, first + count)]


def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    for key, value in records:
        producer.produce(topic, key=key, value=value)
    assert producer.flush(30) == 0


def charted(ehr: MllpEhr) -> Counter:
    """(patient, MDC code, OBX-14) of every numeric OBX the EHR charted (resends of an MSH-10 once)."""
    seen = Counter()
    for control_id in ehr.order:
        message = hl7.parse(ehr.charted[control_id].message)
        patient = str(message.segment("PID")(3)(1)(1))
        seen.update((patient, str(obx(3)(1)(1)), str(obx(14))) for obx in message.segments("OBX") if str(obx(2)) == "NM")
    return seen


def start_deliver(folder: Path, bootstrap: str, log_path: Path) -> subprocess.Popen:
    with log_path.open("ab") as log:
        return subprocess.Popen([DEVSYNC, "deliver", "--bootstrap", bootstrap, "--rules", str(folder),
                                 "--log-level", "WARNING"], stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})


async def wait_for(condition, timeout_s: float, what: str, proc: subprocess.Popen) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert proc.poll() is None, f"devsync deliver exited early ({proc.returncode})"
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


@pytest.mark.timeout(180)
def test_deliver_charts_every_observation_once_across_a_kill_and_dead_letters_garbage(tmp_path, kafka_bootstrap):
    asyncio.run(_scenario(tmp_path, kafka_bootstrap))


async def _scenario(tmp_path: Path, bootstrap: str) -> None:
    ehr = await MllpEhr(script=lambda control_id, n: ("delay", 0.05) if n < 40 else ("AA",)).start()
    folder, rules = isolated_rules(tmp_path)
    (folder / "hub.yaml").write_text(yaml.safe_dump({"version": 1, "sinks": {"hl7v2": {
        "host": "127.0.0.1", "port": ehr.port, "connections": 2, "max_batch_delay_s": 0.05, "ack_timeout_s": 5.0,
        "backoff": {"initial_s": 0.2, "max_s": 1.0}}},
        "runtime": {"database_url": f"sqlite:///{tmp_path / 'hub.db'}", "metrics_port": 0}}))
    rules = load_rules(folder)
    ensure_topics(confluent_config(KafkaSettings(bootstrap=bootstrap), rules.kafka), topic_specs(rules.kafka))
    topic = TopicNames.from_rules(rules.kafka).observations
    first, second = observations(0, 300), observations(300, 300)
    garbage = (b"MRN0001", b'{"event_id": "not-an-event"')
    produce(bootstrap, topic, [(e.patient.patient_id.encode(), e.to_json()) for e in first[:150]] + [garbage]
            + [(e.patient.patient_id.encode(), e.to_json()) for e in first[150:]])
    log_path = tmp_path / "deliver.log"
    proc = start_deliver(folder, bootstrap, log_path)
    began = asyncio.get_running_loop().time()
    try:
        await wait_for(lambda: len(ehr.order) >= 3, 60, "the first charted messages", proc)
        proc.kill()  # SIGKILL: offsets of the batch in hand are not committed; its messages may be half sent
        proc.wait(10)
        charted_at_kill = sum(charted(ehr).values())
        produce(bootstrap, topic, [(e.patient.patient_id.encode(), e.to_json()) for e in second])
        proc = start_deliver(folder, bootstrap, log_path)
        expected = Counter((e.patient.patient_id, str(e.mdc_code), hl7_time(e.corrected_time)) for e in first + second)
        await wait_for(lambda: set(charted(ehr)) >= set(expected), 120, "every observation charted", proc)
        print(f"deliver: killed after {charted_at_kill} charted; all {len(expected)} charted "
              f"{asyncio.get_running_loop().time() - began:.1f} s after the first start")
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 30) == 0, log_path.read_text()[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
        await ehr.stop()

    seen = charted(ehr)
    assert 0 < charted_at_kill < len(expected), "the kill did not land mid-stream"
    assert seen == expected, f"charted twice: {[k for k, n in seen.items() if n > 1][:5]}"
    store = open_store(f"sqlite:///{tmp_path / 'hub.db'}")
    letters = store.dead_letters()
    store.close()
    assert [(letter.sink, letter.step) for letter in letters] == [("deliver", "decode")]
    assert f"{topic}[" in letters[0].reason and "is not a canonical event" in letters[0].reason
    assert "stopped cleanly after" in log_path.read_text()
    replay = subprocess.run([DEVSYNC, "dlq", "replay", "--all", "--rules", str(folder)], capture_output=True, text=True,
                            timeout=60)
    assert f"dead letter {letters[0].id}: not replayed: a record of the observations topic" in replay.stdout, replay
