"""PCD-04: an alarm's start, update and end reach a python-hl7 MLLP server as ORU^R40 messages.

Each message parses with python-hl7, and segment by segment with hl7apy (1.3.5 knows no ORU^R40
structure); the segments and fields the IHE PCD ACM profile requires are checked against the two
real PCD-04 examples in ../shared/data/hl7v2.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import hl7
import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_segment

from hub.events import AlarmPhase, AlarmState
from hub.sinks.pcd04 import Pcd04Sink
from hub.store import DELIVERED
from tests.support.mllp_ehr import MllpEhr
from tests.support.sink_events import T0, alarm, rules_with, vital

DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "hl7v2"
EXAMPLES = ["ihe_pcd04_bbraun_pump_occlusion_alarm_start.hl7", "ihe_pcd04_bbraun_pump_occlusion_alarm_end.hl7"]
LIFECYCLE = [(AlarmPhase.START, AlarmState.ACTIVE), (AlarmPhase.UPDATE, AlarmState.ACTIVE),
             (AlarmPhase.END, AlarmState.INACTIVE)]


def facets(message) -> dict[str, str]:
    """OBX-3 MDC reference -> OBX-5, the ACM facets (event phase, alarm state, ...)."""
    return {str(obx(3)(1)(2)): str(obx(5)) for obx in message.segments("OBX")}


def acm_shape(message) -> dict:
    msh = message.segment("MSH")
    return {
        "type": str(msh(9)), "version": str(msh(12)), "ack": (str(msh(15)), str(msh(16))),
        "profile": str(msh(21)(1)(1)), "segments": [str(s(0)) for s in message][:4],
        "obr4": str(message.segment("OBR")(4)), "facets": {"MDC_ATTR_EVENT_PHASE", "MDC_ATTR_ALARM_STATE"}
        & set(facets(message)),
    }


@pytest.mark.parametrize("example", EXAMPLES)
def test_real_examples_have_the_shape_we_check(example):
    message = hl7.parse((DATA / example).read_text().replace("\n", "\r").strip())
    shape = acm_shape(message)
    # the "end" example of the IHE framework is abridged (no facet OBX); the start example has them
    wanted_facets = {"MDC_ATTR_EVENT_PHASE", "MDC_ATTR_ALARM_STATE"} if "start" in example else set()
    assert shape == {
        "type": "ORU^R40^ORU_R40", "version": "2.6", "ack": ("AL", "NE"), "profile": "IHE_PCD_ACM_001",
        "segments": ["MSH", "PID", "PV1", "OBR"], "obr4": "196616^MDC_EVT_ALARM^MDC", "facets": wanted_facets,
    }
    first = message.segments("OBX")[0]
    assert str(first(3)(1)(1)) == "196616" or str(first(2)) in ("CWE", "ST")  # alarm condition comes first


def test_alarm_start_update_end_reach_the_alarm_manager_as_oru_r40(store):
    alarms = [alarm("MRN0002", phase=phase, state=state, t=T0 + n, seq=n) for n, (phase, state) in
              enumerate(LIFECYCLE)]

    async def scenario():
        manager = await MllpEhr().start()
        rules = rules_with(sinks={"pcd04": {"host": "127.0.0.1", "port": manager.port}})
        sink = Pcd04Sink(rules, store, rules.sinks.pcd04)
        sink.add(vital("MRN0002"))  # not routed to the alarm sink
        for event in alarms:
            sink.add(event)  # fast path: sent at once, before any flush
        for _ in range(500):
            if len(manager.received) == 3:
                break
            await asyncio.sleep(0.01)
        received_before_flush = len(manager.received)
        await sink.flush()
        await sink.close()
        await manager.stop()
        return manager, received_before_flush

    manager, before_flush = asyncio.run(scenario())
    assert before_flush == 3
    messages = [hl7.parse(a.message) for a in manager.received]
    for message, (phase, state) in zip(messages, LIFECYCLE):
        shape = acm_shape(message)
        assert shape == {"type": "ORU^R40^ORU_R40", "version": "2.6", "ack": ("AL", "NE"),
                         "profile": "IHE_PCD_ACM_001", "segments": ["MSH", "PID", "PV1", "OBR"],
                         "obr4": "196616^MDC_EVT_ALARM^MDC",
                         "facets": {"MDC_ATTR_EVENT_PHASE", "MDC_ATTR_ALARM_STATE"}}
        values = facets(message)
        assert values["MDC_ATTR_EVENT_PHASE"] == phase.value
        assert values["MDC_ATTR_ALARM_STATE"] == state.value
        assert str(message.segment("PID")(3)(1)(1)) == "MRN0002"
        obx1 = message.segments("OBX")[0]
        assert "PH" in str(obx1(8))  # high priority (IHE PCD ACM: OBX-8 alarm priority)
        for segment in filter(None, str(message).split("\r")[1:]):
            parse_segment(segment, version="2.6", validation_level=VALIDATION_LEVEL.STRICT)
    # the same alarm instance across start / update / end (OBR-3 filler order number)
    assert len({str(m.segment("OBR")(3)(1)(1)) for m in messages}) == 1
    states = store.delivery_states("pcd04", [a.event_id for a in alarms])
    assert {s.status for s in states.values()} == {DELIVERED} and len(states) == 3
