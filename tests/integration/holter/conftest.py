"""Fixtures: one real Holter service process shared by the flow, error and fuzz tests, its API key
(created with the real `devsync holter key create`) and an HTTP client."""

from __future__ import annotations

import pytest

from tests.integration.holter.holter_service import Client, HolterServer


@pytest.fixture(scope="session")
def holter_server(tmp_path_factory):
    server = HolterServer(tmp_path_factory.mktemp("holter"), {"workers": 2, "webhook_backoff_s": 0.2})
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def holter_key(holter_server) -> tuple[str, str]:
    return holter_server.create_key("tests")


@pytest.fixture(scope="session")
def client(holter_server, holter_key) -> Client:
    return Client(holter_server.url, holter_key[0])
