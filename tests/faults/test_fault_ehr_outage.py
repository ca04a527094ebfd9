"""Faults at the EHR end of the HL7 v2 (MLLP) sink, through the embedded runtime.

A ward feed (monitors bound to patients by ADT, one reading per metric per monitor every 2 s)
goes into the embedded runtime, through stages 1 and 2, to the MLLP sink and python-hl7's MLLP
server as the EHR (it deduplicates by MSH-10, as interface engines do). The far end is counted
by observation identity (patient, MDC code, observation time) read back from what the EHR
charted: every reading charted once, none twice, each patient's series in time order, and the
hub's ledger agreeing with the EHR.

1. The EHR goes away for 60 s (listener closed: connection refused) and comes back on the same
   port while the feed keeps going: the hub pauses with a logged error, holds everything, and
   charts the backlog once each, in order, after recovery.
2. The EHR ACKs slowly (0.5-2.5 s), some ACKs later than the sink's ACK timeout: the sink resends
   under the same control id and never builds a second message for an observation.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from fault_report import report
from sink_faults_support import (
    MLLP_SETTINGS,
    Hub,
    WardFeed,
    catch_up_s,
    checkpoint_failures,
    exactly_once_counts,
    reopen,
)

from hub.store import open_store
from tests.support.mllp_ehr import MllpEhr

pytestmark = [pytest.mark.integration, pytest.mark.faults]

OUTAGE_S = 60.0
BEFORE_S, AFTER_S = 8.0, 10.0

ACK_TIMEOUT_S = 1.5
ACK_DELAYS_S = (0.5, 1.0, 2.0, 0.7, 2.5)  # first arrival of each message, in turn; 2 of 5 beyond the timeout
RESEND_DELAY_S = 0.5
SLOW_FEED_S = 40.0


def charted_observations(ehr: MllpEhr) -> int:
    """Numeric OBX segments in the messages the EHR charted (cheap enough to poll)."""
    return sum(1 for arrival in ehr.charted.values() for segment in arrival.message.split("\r")
               if segment.startswith("OBX|") and segment.split("|")[2] == "NM")


@pytest.mark.timeout(200)
def test_sixty_second_ehr_outage_holds_everything_then_charts_it_once_in_order(tmp_path, caplog):
    """Proves: a 60 s refusal by the EHR under steady input loses nothing and charts nothing twice;
    the runtime survives it (pauses with a logged error instead of dying) and catches up in order."""
    caplog.set_level(logging.INFO, logger="devsync.runtime")

    async def scenario():
        ehr = await MllpEhr().start()
        store = open_store(f"sqlite:///{tmp_path / 'hub.db'}")
        hub = Hub.start(store, ehr.port, **MLLP_SETTINGS)
        feed = WardFeed(hub.runtime)
        try:
            await feed.bind_patients()
            feeding = asyncio.create_task(feed.run_for(BEFORE_S + OUTAGE_S + AFTER_S))
            await asyncio.sleep(BEFORE_S)
            charted_before = charted_observations(ehr)
            await ehr.stop()
            down_at = time.monotonic()
            await asyncio.sleep(OUTAGE_S)
            await reopen(ehr)
            up_at, recovered_at = time.monotonic(), time.time()
            backlog = len(feed.sent) - charted_observations(ehr)
            assert not hub.task.done(), "the runtime died during the outage"
            failures_during_outage = len(checkpoint_failures(caplog))
            await feeding
            await hub.stop()
        finally:
            await ehr.stop()
            store.close()
        return ehr, hub, feed, {
            "outage_s": round(up_at - down_at, 1), "catch_up_s": round(catch_up_s(hub, recovered_at), 1),
            "charted_before_outage": charted_before, "backlog_at_recovery": backlog,
            "checkpoint_failures": failures_during_outage,
        }

    ehr, hub, feed, figures = asyncio.run(scenario())
    assert figures["charted_before_outage"] > 0  # the link worked before the fault
    assert figures["backlog_at_recovery"] >= 300  # about 60 s of readings were held, not dropped
    assert figures["checkpoint_failures"] >= 3  # the hub said so, repeatedly, while it waited
    assert any("cannot connect" in failure for failure in checkpoint_failures(caplog))
    report(exactly_once_counts("ehr-mllp-outage-60s", feed, ehr, hub, figures))


@pytest.mark.timeout(150)
def test_slow_acks_beyond_the_ack_timeout_resend_the_same_control_id_and_chart_once(tmp_path):
    """Proves: an EHR slower than the ACK timeout gets resends under the same MSH-10 (which it
    charts once) and never a second, different message for an observation already sent."""
    first_seen: dict[str, float] = {}

    def slow_ehr(control_id: str, _arrival: int):
        if control_id in first_seen:
            return ("delay", RESEND_DELAY_S)
        first_seen[control_id] = ACK_DELAYS_S[len(first_seen) % len(ACK_DELAYS_S)]
        return ("delay", first_seen[control_id])

    async def scenario():
        ehr = await MllpEhr(script=slow_ehr).start()
        store = open_store(f"sqlite:///{tmp_path / 'hub.db'}")
        # 8 connections: the six patients fall on six different lanes (one message in flight each)
        hub = Hub.start(store, ehr.port, **{**MLLP_SETTINGS, "connections": 8, "ack_timeout_s": ACK_TIMEOUT_S})
        feed = WardFeed(hub.runtime, beds=6)
        try:
            await feed.bind_patients()
            await feed.run_for(SLOW_FEED_S)
            await hub.stop()
        finally:
            await ehr.stop()
            store.close()
        return ehr, hub, feed

    ehr, hub, feed = asyncio.run(scenario())
    slow = {cid for cid, delay in first_seen.items() if delay > ACK_TIMEOUT_S}
    arrivals = [a.control_id for a in ehr.received]
    assert slow and all(arrivals.count(cid) >= 2 for cid in slow)  # timed out, resent unchanged
    assert all(a.message == ehr.charted[a.control_id].message for a in ehr.received)  # byte-identical resends
    figures = {"ack_timeout_s": ACK_TIMEOUT_S, "ack_delays_s": "/".join(map(str, ACK_DELAYS_S)),
               "resend_delay_s": RESEND_DELAY_S, "slow_messages": len(slow)}
    report(exactly_once_counts("ehr-mllp-slow-acks", feed, ehr, hub, figures))
