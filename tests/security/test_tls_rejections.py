"""TLS/mTLS rejections with a test CA made here: the real MLLP listener (connectors/mllp.py, whose
server context HTTP ingest shares) against the real client context of the MLLP sink and FHIR client
(hub/sinks/tls.py). An expired certificate, a certificate from the wrong CA and a missing client
certificate are each refused, and the error the connecting side gets names the cause."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from pathlib import Path

import pytest
from security_pki import TestCa

from connectors.hl7.framing import frame_message
from connectors.hl7.inventory import DeviceDirectory
from connectors.mllp import MllpConnector
from hub.rules.connectors import MllpListener
from hub.rules.load import load_rules
from hub.rules.sinks import TlsConfig
from hub.sinks.tls import client_ssl_context

pytestmark = pytest.mark.timeout(120)
ROOT = Path(__file__).resolve().parents[2]
MESSAGE = (b"MSH|^~\\&|GW|ACME|HUB|HUB|20261121100000+0000||ORU^R01^ORU_R01|TLS-1|P|2.6\r"
           b"PID|||NOPATIENT\rOBR|1|||182777000^monitoring of patient^SCT|||20261121100000+0000\r")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pki")
    good, wrong = TestCa(folder, "hospital-ca"), TestCa(folder, "other-ca")
    return {
        "ca": good.path,
        "server": good.issue("hub", server=True),
        "server_expired": good.issue("hub-expired", server=True, expired=True),
        "server_wrong_ca": wrong.issue("hub-wrong", server=True),
        "client": good.issue("gateway", server=False),
        "client_expired": good.issue("gateway-expired", server=False, expired=True),
        "client_wrong_ca": wrong.issue("gateway-wrong", server=False),
    }


async def exchange(server: tuple[Path, Path], client_ca: Path, tls: TlsConfig) -> bytes:
    """Start the listener with `server` cert (mutual TLS against client_ca), send one frame, return the reply."""
    config = MllpListener(port=0, host="127.0.0.1", tls_cert=str(server[0]), tls_key=str(server[1]),
                          tls_client_ca=str(client_ca))
    connector = MllpConnector(config, DeviceDirectory(load_rules(ROOT / "rules")))

    async def emit(event):
        return None

    asyncio.get_running_loop().set_debug(True)  # asyncio reports server-side handshake failures only in debug
    await connector.start(emit)
    try:
        context = client_ssl_context(tls, "sinks.ehr")
        return await asyncio.to_thread(blocking_exchange, connector.port, context)
    finally:
        await connector.stop()


def blocking_exchange(port: int, context: ssl.SSLContext) -> bytes:
    """A blocking client, as the MLLP sink uses: send one frame, read until the ACK's end block."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(frame_message(MESSAGE))
        reply = b""
        while not reply.endswith(b"\x1c\r"):
            chunk = tls.recv(65536)
            if not chunk:
                raise ConnectionError(f"connection closed after {len(reply)} bytes, no ACK")
            reply += chunk
        return reply


def refused(server, client_ca, tls) -> str:
    with pytest.raises((ssl.SSLError, ConnectionError)) as caught:
        asyncio.run(exchange(server, client_ca, tls))
    return str(caught.value)


def refused_by_server(server, client_ca, tls, caplog) -> str:
    """The client gets no ACK (the listener closes without a TLS alert); the listener's side names the cause."""
    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        assert "no ACK" in refused(server, client_ca, tls)
    return " ".join(f"{r.getMessage()} {r.exc_info[1] if r.exc_info else ''}" for r in caplog.records
                    if r.name == "asyncio")


def test_valid_mutual_tls_gets_an_ack(pki):
    reply = asyncio.run(exchange(pki["server"], pki["ca"], TlsConfig(
        ca_file=str(pki["ca"]), cert_file=str(pki["client"][0]), key_file=str(pki["client"][1]))))
    assert b"MSA|" in reply and b"TLS-1" in reply


def test_missing_client_certificate_is_refused(pki, caplog):
    error = refused_by_server(pki["server"], pki["ca"], TlsConfig(ca_file=str(pki["ca"])), caplog)
    assert "peer did not return a certificate" in error.lower(), error


def test_client_certificate_from_the_wrong_ca_is_refused(pki, caplog):
    cert, key = pki["client_wrong_ca"]
    error = refused_by_server(pki["server"], pki["ca"],
                              TlsConfig(ca_file=str(pki["ca"]), cert_file=str(cert), key_file=str(key)), caplog)
    assert "unable to get local issuer certificate" in error.lower(), error


def test_expired_client_certificate_is_refused(pki, caplog):
    cert, key = pki["client_expired"]
    error = refused_by_server(pki["server"], pki["ca"],
                              TlsConfig(ca_file=str(pki["ca"]), cert_file=str(cert), key_file=str(key)), caplog)
    assert "certificate has expired" in error.lower(), error


def test_expired_server_certificate_is_refused_by_the_client(pki):
    cert, key = pki["client"]
    error = refused(pki["server_expired"], pki["ca"],
                    TlsConfig(ca_file=str(pki["ca"]), cert_file=str(cert), key_file=str(key)))
    assert "certificate has expired" in error.lower(), error


def test_server_certificate_from_the_wrong_ca_is_refused_by_the_client(pki):
    cert, key = pki["client"]
    error = refused(pki["server_wrong_ca"], pki["ca"],
                    TlsConfig(ca_file=str(pki["ca"]), cert_file=str(cert), key_file=str(key)))
    assert "certificate verify failed" in error.lower() and "issuer" in error.lower(), error


def test_client_refuses_anything_below_tls_1_2():
    context = client_ssl_context(TlsConfig(), "sinks.ehr")
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
