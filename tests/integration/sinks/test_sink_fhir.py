"""FHIR sink against the test FHIR server (tests/support/fhir_server.py, standing in for the EHR)."""

from __future__ import annotations

import asyncio
import time

import pytest

from hub.errors import RuleError, SinkError
from hub.sinks.fhir_client import FhirSink
from hub.store import DELIVERED, DLQ
from tests.faults.fault_report import FaultCounts, report
from tests.support.fhir_server import FhirTestServer
from tests.support.sink_events import T0, rules_with, vital
from tests.support.tls_certs import make_cert, server_context

PATIENTS = ["MRN0001", "MRN0002", "MRN0003"]
EVENT_ID = "urn:devsync:event-id"


def readings(n_per_patient: int, start: int = 0):
    return [vital(p, metric=m, value=60 + i, t=T0 + i, seq=i) for i in range(start, start + n_per_patient)
            for p in PATIENTS for m in ("heart-rate", "spo2")]


def sink_for(server: FhirTestServer, store, **settings) -> FhirSink:
    config = {"base_url": server.base_url, "batch_size": 50, "max_batch_delay_s": 0.05, "flush_timeout_s": 10,
              "backoff": {"initial_s": 0.1, "max_s": 1.0}, **settings}
    rules = rules_with(sinks={"fhir": config})
    return FhirSink(rules, store, rules.sinks.fhir)


async def flush_until_done(sink: FhirSink, limit_s: float = 120) -> int:
    """What a runtime does on back-pressure: wait retry_after, flush again. Returns the retriable errors seen."""
    errors = 0
    deadline = time.monotonic() + limit_s
    while True:
        try:
            await sink.flush()
            return errors
        except SinkError as exc:
            assert exc.retriable and time.monotonic() < deadline
            errors += 1
            await asyncio.sleep(min(exc.retry_after or 0.5, 2))


def charted_event_ids(server: FhirTestServer) -> list[str]:
    """The event-id identifier of every Observation the server holds (a duplicate would appear twice)."""
    return [i["value"] for o in server.observations() for i in o["identifier"] if i["system"] == EVENT_ID]


def assert_exactly_once(server: FhirTestServer, store, events):
    identifiers = charted_event_ids(server)
    assert sorted(identifiers) == sorted(e.event_id for e in events)  # every one, none twice
    states = store.delivery_states("fhir", [e.event_id for e in events])
    assert {s.status for s in states.values()} == {DELIVERED} and len(states) == len(events)
    assert all(s.detail.startswith(("201 Created Observation/", "200 OK Observation/")) for s in states.values())


def test_bundles_by_size_with_per_entry_outcomes(pg_store):
    async def scenario():
        server = await FhirTestServer().start()
        sink = sink_for(server, pg_store, connections=1)
        events = readings(30)  # 180 observations -> bundles of 50, 50, 50, 30
        for event in events:
            sink.add(event)
        await sink.flush()
        await sink.close()
        await server.stop()
        return server, events

    server, events = asyncio.run(scenario())
    assert [r.entries for r in server.requests] == [50, 50, 50, 30]
    assert server.created == 180 and server.matched == 0
    assert_exactly_once(server, pg_store, events)


def test_partial_bundle_is_sent_after_the_batch_delay_without_flush(store):
    async def scenario():
        server = await FhirTestServer().start()
        sink = sink_for(server, store, max_batch_delay_s=0.1)
        for event in readings(2):
            sink.add(event)
        for _ in range(300):
            if server.created == 12:
                break
            await asyncio.sleep(0.01)
        created_before_flush = server.created
        await sink.flush()
        await sink.close()
        await server.stop()
        return created_before_flush

    assert asyncio.run(scenario()) == 12


def test_sixty_second_outage_then_recovery_every_observation_exactly_once(store):
    """503s for 60 s mid-stream (the first request of the outage is committed but its answer lost)."""
    async def scenario():
        server = await FhirTestServer().start()
        sink = sink_for(server, store, backoff={"initial_s": 0.5, "max_s": 4.0})
        before, during, after = readings(10), readings(10, start=10), readings(10, start=20)
        for event in before:
            sink.add(event)
        await sink.flush()
        server.outage(60.0, lose_first=True)
        outage = (time.monotonic(), time.monotonic() + 60.0)
        for event in during:
            sink.add(event)
        errors = await flush_until_done(sink)
        for event in after:
            sink.add(event)
        await flush_until_done(sink)
        await sink.close()
        await server.stop()
        return server, before + during + after, errors, outage

    server, events, errors, (start, end) = asyncio.run(scenario())
    charted = charted_event_ids(server)
    report(FaultCounts("fhir-outage-60s", sent=len(events), delivered=len(set(charted) & {e.event_id for e in events}),
                       duplicated=len(charted) - len(set(charted)),
                       figures={"outage_s": round(end - start, 1), "retriable_flush_errors": errors,
                                "conditional_create_matches": server.matched}))
    assert errors >= 3  # flush kept saying "retriable" through the outage (flush_timeout_s = 10)
    assert any(r.status == 503 for r in server.requests)
    assert server.matched >= 1  # the lost answer's bundle was resent; conditional create made it a no-op
    assert_exactly_once(server, store, events)
    assert all(r.status == 503 for r in server.requests if start <= r.at < end)
    assert server.requests[-1].status == 200 and server.requests[-1].at >= end


def test_429_retry_after_is_honoured(store):
    async def scenario():
        server = await FhirTestServer().start()
        server.throttle(2, retry_after=1)
        sink = sink_for(server, store, connections=1, backoff={"initial_s": 0.05, "max_s": 0.05})
        events = readings(3)
        for event in events:
            sink.add(event)
        await sink.flush()
        await sink.close()
        await server.stop()
        return server, events

    server, events = asyncio.run(scenario())
    statuses = [r.status for r in server.requests]
    assert statuses[:3] == [429, 429, 200]
    gaps = [b.at - a.at for a, b in zip(server.requests, server.requests[1:3])]
    assert all(gap >= 0.95 for gap in gaps), gaps  # waited Retry-After (1 s), not the 0.05 s backoff
    assert_exactly_once(server, store, events)


def test_rejected_entry_goes_to_dlq_alone(store):
    """The 'EHR' refuses SpO2 (422): the Bundle is split, only the SpO2 Observations are dead-lettered."""
    async def scenario():
        server = await FhirTestServer(reject_loinc={"59408-5"}).start()
        sink = sink_for(server, store, connections=1)
        events = [vital("MRN0001", metric="heart-rate", t=T0 + i, seq=i) for i in range(4)]
        events.insert(2, vital("MRN0001", metric="spo2", value=97, t=T0 + 2, seq=2))
        for event in events:
            sink.add(event)
        await sink.flush()
        await sink.close()
        await server.stop()
        return server, events

    server, events = asyncio.run(scenario())
    rejected = events[2]
    assert_exactly_once(server, store, [e for e in events if e is not rejected])
    letters = store.dead_letters()
    assert [d.event_id for d in letters] == [rejected.event_id]
    assert "422" in letters[0].reason and "59408-5 is not accepted" in letters[0].reason
    assert store.delivery_states("fhir", [rejected.event_id])[rejected.event_id].status == DLQ


def test_oauth2_client_credentials_over_tls(store, tmp_path):
    cert, key = make_cert(tmp_path, "fhir-server")
    secret_file = tmp_path / "client-secret"
    secret_file.write_text("s3cret\n")

    async def scenario():
        server = await FhirTestServer(oauth_clients={"devsync": "s3cret"}, token_lifetime_s=3600).start(
            ssl_context=server_context(cert, key))
        base = f"https://127.0.0.1:{server.port}"
        sink = sink_for(server, store, base_url=f"{base}/fhir", tls={"ca_file": str(cert)},
                        auth={"oauth2": {"token_url": f"{base}/token", "client_id": "devsync",
                                         "client_secret_file": str(secret_file), "scope": "system/Observation.write"}})
        events = readings(2)
        for event in events:
            sink.add(event)
        await sink.flush()
        await sink.close()
        await server.stop()
        return server, events

    server, events = asyncio.run(scenario())
    assert all(r.status == 200 for r in server.requests)
    assert_exactly_once(server, store, events)


def test_wrong_bearer_token_is_retried_not_dead_lettered_and_a_fixed_token_file_delivers(store, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("wrong")

    async def scenario():
        server = await FhirTestServer(token="right").start()
        sink = sink_for(server, store, flush_timeout_s=0.5, auth={"token_file": str(token_file)})
        events = readings(1)
        for event in events:
            sink.add(event)
        with pytest.raises(SinkError, match="answered 401"):
            await sink.flush()
        token_file.write_text("right")  # the operator rotates the secret; the sink re-reads the file
        await flush_until_done(sink, limit_s=20)
        await sink.close()
        await server.stop()
        return server, events

    server, events = asyncio.run(scenario())
    assert store.dead_letters() == []
    assert_exactly_once(server, store, events)


def test_missing_secret_is_a_clear_rule_error(store, tmp_path):
    with pytest.raises(RuleError, match=r"sinks\.fhir\.auth: cannot read secret file .*missing"):
        rules = rules_with(sinks={"fhir": {"base_url": "http://127.0.0.1:1/fhir",
                                           "auth": {"token_file": str(tmp_path / "missing")}}})
        FhirSink(rules, store, rules.sinks.fhir)
