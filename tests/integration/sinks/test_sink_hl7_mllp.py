"""HL7 v2 sink against python-hl7's MLLP server acting as the EHR.

After each scenario every observation is delivered exactly once by control id (the EHR charts
each MSH-10 once; the ledger has one delivered state per observation) and in per-patient order.
"""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.exc import OperationalError

from hub.errors import SinkError
from hub.sinks.mllp import MllpSink, control_id_for
from hub.store import DELIVERED, DLQ, SENT, Store
from tests.support.mllp_ehr import MllpEhr
from tests.support.sink_events import T0, rules_with, vital
from tests.support.tls_certs import make_cert, server_context

PATIENTS = ["MRN0001", "MRN0002", "MRN0003", "MRN0004"]
FAST = {"ack_timeout_s": 0.4, "connect_timeout_s": 1, "flush_timeout_s": 20, "max_batch_delay_s": 0.05,
        "backoff": {"initial_s": 0.05, "max_s": 0.2}}


def readings(n_per_patient: int = 15):
    """One heart rate per patient per second: one observation per message, ids known in advance."""
    return [vital(p, value=60 + i, t=T0 + i, seq=i) for i in range(n_per_patient) for p in PATIENTS]


def expected_id(event) -> str:
    return control_id_for("hl7v2", [event.event_id])


async def run_sink(store, script=None, *, events=None, connections=2, **settings):
    ehr = await MllpEhr(script=script).start()
    rules = rules_with(sinks={"hl7v2": {"host": "127.0.0.1", "port": ehr.port, "connections": connections,
                                        **FAST, **settings}})
    sink = MllpSink(rules, store, rules.sinks.hl7v2)
    events = events if events is not None else readings()
    try:
        for event in events:
            sink.add(event)
        await sink.flush()
    finally:
        await sink.close()
        await ehr.stop()
    return ehr, events


def assert_exactly_once_in_order(ehr, store, delivered_events):
    wanted = {expected_id(e): e for e in delivered_events}
    assert set(ehr.charted) == set(wanted)  # each observation charted, none twice, nothing else
    for patient in PATIENTS:
        charted_times = [wanted[cid].effective_time for cid in ehr.order if wanted[cid].patient.patient_id == patient]
        assert charted_times == sorted(charted_times), f"{patient} out of order"
        assert {a.patient_id for a in ehr.charted.values() if a.control_id in wanted} >= {patient}
    states = store.delivery_states("hl7v2", [e.event_id for e in delivered_events])
    assert {s.status for s in states.values()} == {DELIVERED} and len(states) == len(delivered_events)
    assert all(states[e.event_id].control_id == expected_id(e) for e in delivered_events)


def test_normal_flow_every_observation_once_in_order(store):
    ehr, events = asyncio.run(run_sink(store))
    assert_exactly_once_in_order(ehr, store, events)
    assert len(ehr.received) == len(events)  # no resends were needed


def test_ae_for_some_messages_goes_to_dlq_with_the_ehr_text_and_others_flow(store):
    events = readings()
    rejected = {expected_id(e) for e in events[5::11]}

    def script(control_id, _n):
        return ("AE", "OBX-5 value not accepted") if control_id in rejected else ("AA",)

    ehr, _ = asyncio.run(run_sink(store, script, events=events))
    letters = store.dead_letters()
    assert {control_id_for("hl7v2", [d.event_id]) for d in letters} == rejected
    assert all("answered AE" in d.reason and "OBX-5 value not accepted" in d.reason for d in letters)
    assert all(d.payload and d.payload.startswith("MSH|") for d in letters)
    assert_exactly_once_in_order(ehr, store, [e for e in events if expected_id(e) not in rejected])
    states = store.delivery_states("hl7v2", [d.event_id for d in letters])
    assert {s.status for s in states.values()} == {DLQ}


def test_late_ack_is_never_credited_to_the_next_message(store):
    """The ACK of message k comes after the timeout; message k+1 is rejected (AE). Had the late AA
    been credited to k+1, k+1 would count as delivered and miss the DLQ."""
    events = readings()
    order = [expected_id(e) for e in events]
    delayed = {order[3], order[20]}
    rejected = {order[4], order[21]}
    seen = set()

    def script(control_id, _n):
        if control_id in delayed and control_id not in seen:
            seen.add(control_id)
            return ("delay", 1.0)  # the ACK comes after the 0.4 s timeout, on the old connection
        return ("AE", "rejected on purpose") if control_id in rejected else ("AA",)

    ehr, _ = asyncio.run(run_sink(store, script, events=events, connections=1))
    for control_id in delayed:
        assert [a.control_id for a in ehr.received].count(control_id) == 2  # sent, then resent unchanged
    assert {control_id_for("hl7v2", [d.event_id]) for d in store.dead_letters()} == rejected
    assert_exactly_once_in_order(ehr, store, [e for e in events if expected_id(e) not in rejected])


def test_stray_ack_naming_another_message_is_never_credited(store):
    """Before some ACKs the EHR sends an ACK naming another MSH-10; the next message is rejected.
    Crediting the stray would shift every later ACK by one message."""
    events = readings()
    order = [expected_id(e) for e in events]
    stray_before = {order[i] for i in (2, 9, 30)}
    rejected = {order[i] for i in (3, 10, 31)}

    def script(control_id, _n):
        if control_id in stray_before:
            return ("stray", "NOT-" + control_id[:12])
        return ("AE", "rejected on purpose") if control_id in rejected else ("AA",)

    ehr, _ = asyncio.run(run_sink(store, script, events=events, connections=1))
    assert {control_id_for("hl7v2", [d.event_id]) for d in store.dead_letters()} == rejected
    assert_exactly_once_in_order(ehr, store, [e for e in events if expected_id(e) not in rejected])


def test_connection_drops_mid_stream_reconnect_and_resend(store):
    dropped = set()

    def script(control_id, n):
        if n in (4, 9, 31) and control_id not in dropped:
            dropped.add(control_id)
            return ("drop",)
        return ("AA",)

    ehr, events = asyncio.run(run_sink(store, script))
    assert len(dropped) == 3
    for control_id in dropped:
        assert [a.control_id for a in ehr.received].count(control_id) == 2
    assert_exactly_once_in_order(ehr, store, events)


def test_unreachable_ehr_makes_flush_raise_retriable_and_keeps_everything(store):
    async def scenario():
        ehr = await MllpEhr().start()
        port = ehr.port
        await ehr.stop()  # nobody listens any more
        rules = rules_with(sinks={"hl7v2": {"host": "127.0.0.1", "port": port, **FAST, "flush_timeout_s": 0.5}})
        sink = MllpSink(rules, store, rules.sinks.hl7v2)
        events = readings(3)
        for event in events:
            sink.add(event)
        with pytest.raises(SinkError) as raised:
            await sink.flush()
        assert raised.value.retriable and raised.value.retry_after > 0
        assert "cannot connect" in raised.value.reason
        # the EHR comes back on the same port: the next flush delivers everything once
        ehr = MllpEhr()
        import hl7.mllp
        ehr.server = await hl7.mllp.start_hl7_server(ehr._client, "127.0.0.1", port)
        await sink.flush()
        await sink.close()
        await ehr.stop()
        return ehr, events

    ehr, events = asyncio.run(scenario())
    assert_exactly_once_in_order(ehr, store, events)


def test_hub_crash_after_send_resends_under_the_same_control_id(store):
    """Write-ahead: the first hub sends and dies before the ACK; the second hub regroups the same
    observations under the ledger's control id, and the EHR charts them once."""
    events = [vital("MRN0001", metric=m, value=v, t=T0, seq=1) for m, v in (("heart-rate", 71), ("spo2", 97))]

    async def scenario():
        ehr = await MllpEhr(script=lambda cid, n: ("delay", 5.0) if n == 0 else ("AA",)).start()
        rules = rules_with(sinks={"hl7v2": {"host": "127.0.0.1", "port": ehr.port, **FAST, "ack_timeout_s": 5}})
        first = MllpSink(rules, store, rules.sinks.hl7v2)
        for event in events:
            first.add(event)
        first._cut()
        for lane in first.lanes:
            lane.start()
        while not ehr.received:
            await asyncio.sleep(0.01)
        await first.close()  # "crash": no ACK recorded
        sent = store.delivery_states("hl7v2", [e.event_id for e in events])
        second = MllpSink(rules, store, rules.sinks.hl7v2)  # the restarted hub re-reads the same input
        for event in reversed(events):  # even in another order
            second.add(event)
        await second.flush()
        await second.close()
        await ehr.stop()
        return ehr, sent

    ehr, sent = asyncio.run(scenario())
    assert {s.status for s in sent.values()} == {SENT} and len({s.control_id for s in sent.values()}) == 1
    control_id = next(iter(sent.values())).control_id
    assert [a.control_id for a in ehr.received] == [control_id, control_id]
    assert list(ehr.charted) == [control_id]
    states = store.delivery_states("hl7v2", [e.event_id for e in events])
    assert {(s.status, s.control_id) for s in states.values()} == {(DELIVERED, control_id)}


def test_redelivered_observations_are_not_sent_again(store):
    async def scenario():
        ehr = await MllpEhr().start()
        rules = rules_with(sinks={"hl7v2": {"host": "127.0.0.1", "port": ehr.port, **FAST}})
        events = readings(2)
        for _ in range(2):
            sink = MllpSink(rules, store, rules.sinks.hl7v2)
            for event in events:
                sink.add(event)
            await sink.flush()
            await sink.close()
        await ehr.stop()
        return ehr, events

    ehr, events = asyncio.run(scenario())
    assert len(ehr.received) == len(events)
    assert_exactly_once_in_order(ehr, store, events)


def test_mutual_tls_to_the_ehr(store, tmp_path):
    server_cert, server_key = make_cert(tmp_path, "ehr")
    client_cert, client_key = make_cert(tmp_path, "hub")

    async def scenario(with_client_cert: bool):
        ehr = await MllpEhr().start(ssl_context=server_context(server_cert, server_key, client_ca=client_cert))
        tls = {"ca_file": str(server_cert)}
        if with_client_cert:
            tls.update(cert_file=str(client_cert), key_file=str(client_key))
        rules = rules_with(sinks={"hl7v2": {"host": "127.0.0.1", "port": ehr.port, **FAST, "flush_timeout_s": 1,
                                            "tls": tls}})
        sink = MllpSink(rules, store, rules.sinks.hl7v2)
        events = readings(2)
        for event in events:
            sink.add(event)
        try:
            await sink.flush()
        finally:
            await sink.close()
            await ehr.stop()
        return ehr, events

    with pytest.raises(SinkError):  # the EHR demands a client certificate
        asyncio.run(scenario(with_client_cert=False))
    ehr, events = asyncio.run(scenario(with_client_cert=True))
    assert_exactly_once_in_order(ehr, store, events)


class FlakyLedger(Store):
    """The real store, except that the first `failures` outcome writes fail (a database blip)."""

    def __init__(self, store: Store, failures: int):
        super().__init__(store.engine)
        self.failures = failures

    def record_outcomes(self, outcomes, **kwargs):
        if self.failures and any(o.status == DELIVERED for o in outcomes):
            self.failures -= 1
            raise OperationalError("INSERT INTO ledger", {}, Exception("database is locked"))
        return super().record_outcomes(outcomes, **kwargs)


def test_ledger_write_failure_fails_flush_and_loses_no_outcome(store):
    flaky = FlakyLedger(store, failures=1)

    async def scenario():
        ehr = await MllpEhr().start()
        rules = rules_with(sinks={"hl7v2": {"host": "127.0.0.1", "port": ehr.port, **FAST}})
        sink = MllpSink(rules, flaky, rules.sinks.hl7v2)
        events = readings(3)
        for event in events:
            sink.add(event)
        with pytest.raises(OperationalError):
            await sink.flush()  # the runtime must not commit its input now
        await sink.flush()  # the kept outcomes are written
        await sink.close()
        await ehr.stop()
        return ehr, events

    ehr, events = asyncio.run(scenario())
    assert len(ehr.received) == len(events)
    assert_exactly_once_in_order(ehr, store, events)
