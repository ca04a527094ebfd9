"""The demo layout: DIR/hl7v2/*.hl7 (one message per file, CR between segments) and
DIR/fhir/*.ndjson (one resource per line), written exactly once per observation."""

from __future__ import annotations

import asyncio

import hl7
import orjson
from fhir.resources.observation import Observation

from hub.sinks import build_sinks, sinks_by_name
from hub.sinks.files import FileSink
from hub.sinks.mllp import MllpSink
from tests.support.sink_events import T0, alarm, rules_with, vital


def ward_round():
    events = [vital(p, metric=m, value=v, t=T0, seq=1) for p in ("MRN0001", "MRN0002")
              for m, v in (("heart-rate", 72), ("spo2", 97))]
    return events + [alarm("MRN0002", t=T0 + 1)]


def test_demo_layout_once_per_observation(store, tmp_path):
    rules = rules_with(sinks={"files": {"directory": str(tmp_path / "out")}})
    [sink] = build_sinks(rules, store)
    assert isinstance(sink, FileSink)

    async def deliver_twice():
        for _ in range(2):  # the second round is a redelivery of the same events
            for event in ward_round():
                sink.add(event)
            await sink.flush()
        await sink.close()

    asyncio.run(deliver_twice())
    messages = sorted((tmp_path / "out" / "hl7v2").glob("*.hl7"))
    assert len(messages) == 3  # one ORU^R01 per patient (same time), one ORU^R40 alarm
    types = []
    for path in messages:
        text = path.read_bytes().decode()  # (read_text would turn CR into LF)
        assert "\n" not in text and text.count("\r") >= 3
        parsed = hl7.parse(text)
        types.append(str(parsed.segment("MSH")(9)))
        assert path.stem == str(parsed.segment("MSH")(10))  # file name = MSH-10
    assert sorted(types) == ["ORU^R01^ORU_R01", "ORU^R01^ORU_R01", "ORU^R40^ORU_R40"]
    lines = (tmp_path / "out" / "fhir" / "Observation.ndjson").read_bytes().splitlines()
    assert len(lines) == 4  # vitals only (routing: fhir takes vital, spot-check), each once
    for line in lines:
        Observation.model_validate(orjson.loads(line))
    counts = {c.sink: c for c in store.counts()}
    assert counts["hl7v2"].by_status == {"delivered": 4} and counts["fhir"].by_status == {"delivered": 4}
    assert counts["pcd04"].by_status == {"delivered": 1}


def test_files_stand_in_only_for_sinks_without_an_endpoint(store, tmp_path):
    rules = rules_with(sinks={"files": {"directory": str(tmp_path)}, "hl7v2": {"host": "127.0.0.1", "port": 9}})
    sinks = build_sinks(rules, store)
    assert [type(s) for s in sinks] == [MllpSink, FileSink]
    assert sorted(sinks_by_name(sinks)) == ["fhir", "hl7v2", "pcd04"]
    assert isinstance(sinks_by_name(sinks)["hl7v2"], MllpSink)
