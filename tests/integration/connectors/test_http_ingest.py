"""HTTP ingest against a real aiohttp client: auth, limits, field-naming errors, 202 only after emit."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

import aiohttp
import pytest
from connectors_pki import make_pki
from mllp_support import Recorder, directory_for_tests

from connectors.http import HttpConnector
from hub.events import DataClass, EventKind, Quality
from hub.rules.connectors import HttpListener

pytestmark = pytest.mark.integration

TOKEN = "s3cret-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
OBSERVATIONS = [
    {"code": "150456", "value": 97, "unit": "%", "time": "2026-01-01T10:00:00Z"},
    {"code": "MDC_ECG_STAT_RHY", "value": "MDC_ECG_SINUS_RHY", "time": 1767261600.5},
    {"code": "150021", "value": 121.0, "unit": "mmHg", "time": "2026-01-01T11:00:00+01:00", "quality": ["manual"]},
]


@asynccontextmanager
async def running(tmp_path, **config):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    recorder = Recorder()
    connector = HttpConnector(HttpListener(port=0, token_file=str(token_file), max_body_bytes=4096, **config),
                              directory_for_tests(), clock=lambda: 1_800_000_000.0)
    await connector.start(recorder.emit)
    try:
        async with aiohttp.ClientSession() as session:
            yield connector, session, recorder, f"http://127.0.0.1:{connector.port}"
    finally:
        await connector.stop()


def run(coro):
    return asyncio.run(coro)


def test_device_observations_become_events(tmp_path):
    async def scenario():
        async with running(tmp_path) as (_, session, recorder, url):
            async with session.post(f"{url}/v1/devices/NIBP-01/observations", json=OBSERVATIONS, headers=AUTH) as r:
                return r.status, await r.json(), recorder.events

    status, body, events = run(scenario())
    assert status == 202 and body["accepted"] == 3 and body["event_ids"] == [e.event_id for e in events]
    spo2, rhythm, nibp = events
    assert (spo2.kind, spo2.value_sent, spo2.unit_sent, spo2.device_time) == (EventKind.NUMERIC, 97.0, "%", 1767261600.0)
    assert spo2.device.id == "NIBP-01" and spo2.location == "ICU1-BED01" and spo2.source == "nibp"
    assert spo2.mdc_code == 150456 and spo2.seq == 1767261600000 and spo2.received_time == 1_800_000_000.0
    assert rhythm.kind is EventKind.TEXT and rhythm.text == "MDC_ECG_SINUS_RHY"
    assert nibp.quality == {Quality.MANUAL} and nibp.data_class is DataClass.SPOT_CHECK
    assert nibp.device_time == 1767261600.0  # 11:00 +01:00


def test_canonical_events_and_redelivery_ids(tmp_path):
    async def scenario():
        async with running(tmp_path) as (_, session, recorder, url):
            async with session.post(f"{url}/v1/devices/OXI-02/observations", json=OBSERVATIONS[:1], headers=AUTH):
                pass
            event = recorder.events[0]
            payload = [event.model_dump(mode="json"), event.model_dump(mode="json")]
            async with session.post(f"{url}/v1/events", json=payload, headers=AUTH) as r:
                return r.status, await r.json(), recorder.events, event

    status, body, events, original = run(scenario())
    assert status == 202 and body["accepted"] == 2
    assert events[1] == original and events[2] == original  # same event, same id: dedupe downstream


def test_unknown_device_is_kept_as_unknown(tmp_path):
    async def scenario():
        async with running(tmp_path) as (_, session, recorder, url):
            async with session.post(f"{url}/v1/devices/NEW-9/observations", json=OBSERVATIONS[:1], headers=AUTH) as r:
                return r.status, recorder.events

    status, events = run(scenario())
    assert status == 202 and events[0].device.type == "unknown" and events[0].device.id == "unknown-NEW-9"


@pytest.mark.parametrize(
    "path,kwargs,status,code,words",
    [
        ("/v1/events", {"json": []}, 401, "unauthorized", "missing bearer token"),
        ("/v1/events", {"json": [], "headers": {"Authorization": "Bearer wrong"}}, 401, "unauthorized", "not accepted"),
        ("/v1/events", {"json": [], "headers": {"Authorization": f"Basic {TOKEN}"}}, 401, "unauthorized", "bearer"),
        ("/v1/devices/NIBP-01/observations", {"data": b"x" * 5000, "headers": {**AUTH, "Content-Type":
                                              "application/json"}}, 413, "payload_too_large", "4096 bytes"),
        ("/v1/devices/NIBP-01/observations", {"data": b"[1,", "headers": {**AUTH, "Content-Type":
                                              "application/json"}}, 400, "invalid_json", "not valid JSON"),
        ("/v1/devices/NIBP-01/observations", {"data": b"[]", "headers": {**AUTH, "Content-Type": "text/plain"}},
         415, "unsupported_media_type", "application/json"),
        ("/v1/devices/NIBP-01/observations", {"json": [OBSERVATIONS[0], {**OBSERVATIONS[0], "time": "yesterday"}],
                                              "headers": AUTH}, 400, "invalid_body", "observations[1].time"),
        ("/v1/devices/NIBP-01/observations", {"json": [{"code": "x", "value": 1}], "headers": AUTH}, 400,
         "invalid_body", "observations[0].time: Field required"),
        ("/v1/devices/NIBP-01/observations", {"json": [{**OBSERVATIONS[0], "time": "2026-01-01T10:00:00"}],
                                              "headers": AUTH}, 400, "invalid_body", "no UTC offset"),
        ("/v1/devices/NIBP-01/observations", {"json": [{**OBSERVATIONS[0], "quality": ["late"]}], "headers": AUTH},
         400, "invalid_body", "set by the hub"),
        ("/v1/events", {"json": [{"event_id": "x"}], "headers": AUTH}, 400, "invalid_body", "events[0].kind"),
    ],
)
def test_refusals_are_json_and_name_the_problem(tmp_path, path, kwargs, status, code, words):
    async def scenario():
        async with running(tmp_path) as (_, session, recorder, url), session.post(url + path, **kwargs) as r:
            return r.status, r.headers, await r.json(), recorder.events

    got, headers, body, events = run(scenario())
    assert got == status and body["error"]["code"] == code and words in body["error"]["message"]
    assert events == []  # nothing of a refused request is emitted
    if status == 401:
        assert headers["WWW-Authenticate"].startswith("Bearer")


def test_emit_failure_is_503_and_healthz_needs_no_token(tmp_path):
    async def scenario():
        async with running(tmp_path) as (_, session, recorder, url):
            async with session.get(f"{url}/healthz") as r:
                health = r.status, await r.json()
            recorder.failing = True
            async with session.post(f"{url}/v1/devices/NIBP-01/observations", json=OBSERVATIONS, headers=AUTH) as r:
                refused = r.status, r.headers.get("Retry-After"), await r.json()
            recorder.failing = False
            async with session.post(f"{url}/v1/devices/NIBP-01/observations", json=OBSERVATIONS, headers=AUTH) as r:
                return health, refused, r.status

    health, refused, retried = run(scenario())
    assert health == (200, {"status": "up"})
    assert refused[0] == 503 and refused[1] == "1" and refused[2]["error"]["code"] == "unavailable"
    assert retried == 202


def test_https(tmp_path):
    pki = make_pki(tmp_path)

    async def scenario():
        async with running(tmp_path, tls_cert=str(pki.server_cert), tls_key=str(pki.server_key)) as (c, session, _, _u):
            import ssl

            context = ssl.create_default_context(cafile=str(pki.ca_cert))
            url = f"https://127.0.0.1:{c.port}/v1/devices/NIBP-01/observations"
            async with session.post(url, json=OBSERVATIONS, headers=AUTH, ssl=context) as r:
                return r.status

    assert run(scenario()) == 202


def test_chunked_body_over_the_limit_is_413(tmp_path):
    async def body():
        for _ in range(10):
            yield b" " * 1000  # no Content-Length: the limit is enforced while reading

    async def scenario():
        async with running(tmp_path) as (_, session, recorder, url):
            headers = {**AUTH, "Content-Type": "application/json"}
            async with session.post(f"{url}/v1/devices/NIBP-01/observations", data=body(), headers=headers) as r:
                return r.status, (await r.json())["error"]["code"], recorder.events

    assert run(scenario()) == (413, "payload_too_large", [])


def test_missing_token_refuses_to_start(tmp_path, monkeypatch):
    from hub.errors import RuleError

    monkeypatch.delenv("DEVSYNC_TEST_NO_TOKEN", raising=False)

    async def start(config: HttpListener) -> None:
        await HttpConnector(config, directory_for_tests()).start(Recorder().emit)

    with pytest.raises(RuleError, match="DEVSYNC_TEST_NO_TOKEN"):
        run(start(HttpListener(port=0, token_env="DEVSYNC_TEST_NO_TOKEN")))
    with pytest.raises(RuleError, match="cannot be read"):
        run(start(HttpListener(port=0, token_file=str(tmp_path / "absent"))))
