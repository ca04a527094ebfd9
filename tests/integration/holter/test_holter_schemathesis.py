"""Property-based API fuzzing with schemathesis against the live service's /openapi.json: no
generated request may produce a server error (5xx), and every error body is {code, message}.
Schemathesis drives hypothesis per operation (max 25 examples each), authenticated with a real key."""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.integration.holter.holter_service import API

MAX_EXAMPLES = 25


@pytest.fixture(scope="module")
def fuzz_key(holter_server) -> str:
    return holter_server.add_key("fuzz", rate_limit=1_000_000)


@pytest.fixture(scope="module")
def operations(holter_server):
    schema = schemathesis.openapi.from_url(holter_server.url + "/openapi.json")
    return [result.ok() for result in schema.get_all_operations()]


def fuzz_operation(op, base_url: str, key: str, failures: list[str]) -> None:
    """Up to MAX_EXAMPLES generated requests for one operation; 5xx answers are collected."""

    @given(case=op.as_strategy())
    @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def run(case):
        response = case.call(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60)
        if response.status_code >= 500:
            failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:200]}")
        elif response.status_code >= 400:
            body = response.json()
            assert set(body) >= {"code", "message"}, f"{op.label}: error body {body}"

    run()


def test_no_server_errors(operations, fuzz_key, holter_server):
    assert len(operations) >= 9
    failures: list[str] = []
    for op in operations:
        fuzz_operation(op, holter_server.url, fuzz_key, failures)
    assert failures == []


def test_openapi_lists_the_operations(holter_server):
    spec = httpx.get(holter_server.url + "/openapi.json", trust_env=False).json()
    for path in ("upload-url", "upload/{task_id}", "submit", "status/{task_id}", "result/{task_id}", "report/{task_id}",
                 "cancel/{task_id}", "review/{task_id}"):
        assert f"{API}/{path}" in spec["paths"]
