"""Stopping and restarting the listener loses no acknowledged message; TLS and mutual TLS."""

from __future__ import annotations

import asyncio
import ssl

import pytest
from mllp_support import Recorder, ack_fields, connect, directory_for_tests, philips, running_listener, send
from connectors_pki import make_pki

from connectors.mllp import MllpConnector
from hub.rules.connectors import MllpListener

pytestmark = pytest.mark.integration


def test_restart_loses_no_message_the_client_got_aa_for():
    total, restart_after = 40, 12

    async def device(port_of, acked: list[str], halfway: asyncio.Event, connects: list[int]):
        """A device that resends every message until it gets AA (reconnecting as needed)."""
        reader = writer = None
        for i in range(total):
            control_id = f"R{i}"
            for _attempt in range(400):
                try:
                    if writer is None:
                        reader, writer = await connect(port_of())
                        connects.append(i)
                    ack = ack_fields(await send(reader, writer, philips(control_id, minute=i)))
                    if ack["code"] == "AA":
                        acked.append(control_id)
                        break
                except (ConnectionError, asyncio.IncompleteReadError, OSError):
                    writer = None
                    await asyncio.sleep(0.02)
            else:
                raise AssertionError(f"{control_id} never acknowledged")
            if len(acked) == restart_after:
                halfway.set()
        writer.close()

    async def scenario():
        recorder = Recorder(yields=1)
        first = MllpConnector(MllpListener(port=0), directory_for_tests())
        await first.start(recorder.emit)
        port = first.port
        acked: list[str] = []
        halfway = asyncio.Event()
        connects: list[int] = []
        client = asyncio.create_task(device(lambda: port, acked, halfway, connects))
        await halfway.wait()
        await first.stop()  # mid-stream: the device is still sending
        assert first.health()["status"] == "down"
        second = MllpConnector(MllpListener(port=port), directory_for_tests())
        await second.start(recorder.emit)
        await client
        await second.stop()
        return acked, recorder, connects

    acked, recorder, connects = asyncio.run(scenario())
    assert len(connects) >= 2 and connects[1] >= restart_after - 1  # the stop really cut the device off
    assert acked == [f"R{i}" for i in range(total)]
    received = recorder.by_message()
    assert all(len(received[c]) >= 10 for c in acked)  # every AA'd message's events were emitted
    assert len({e.event_id for e in recorder.events}) == total * 10


def _client_context(pki, *, with_cert: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(pki.ca_cert))
    if with_cert:
        context.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    return context


def test_mutual_tls(tmp_path):
    pki = make_pki(tmp_path)

    async def scenario():
        recorder = Recorder()
        config = {"tls_cert": str(pki.server_cert), "tls_key": str(pki.server_key),
                  "tls_client_ca": str(pki.ca_cert)}
        async with running_listener(recorder, **config) as listener:
            assert listener.health()["tls"] is True
            reader, writer = await connect(listener.port, ssl=_client_context(pki, with_cert=True))
            accepted = ack_fields(await send(reader, writer, philips("TLS1")))
            writer.close()
            refused = []
            for attempt in ("no client certificate", "plain TCP"):
                try:
                    kwargs = {"ssl": _client_context(pki, with_cert=False)} if attempt != "plain TCP" else {}
                    reader, writer = await connect(listener.port, **kwargs)
                    await send(reader, writer, philips("NOPE"))
                except (ssl.SSLError, ConnectionError, asyncio.IncompleteReadError, OSError):
                    refused.append(attempt)
        return accepted, refused, recorder

    accepted, refused, recorder = asyncio.run(scenario())
    assert accepted == {"code": "AA", "control_id": "TLS1"}
    assert refused == ["no client certificate", "plain TCP"]
    assert {e.provenance.raw_ref for e in recorder.events} == {"TLS1"}


def test_tls_rules_need_cert_and_key_together():
    with pytest.raises(ValueError, match="tls_cert and tls_key must be given together"):
        MllpListener(tls_cert="server.pem")
