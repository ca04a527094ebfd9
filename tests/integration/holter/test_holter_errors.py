"""Every client error comes back as JSON {code, message} with the right HTTP status, over HTTP
against the real service."""

from __future__ import annotations

import hashlib
import io
import zipfile

import httpx
import pytest

from tests.integration.holter.holter_service import API, WFDB, Client, mit_zip


def error_of(r: httpx.Response, status: int, code: str) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["code"] == code and body["message"], body
    return body["message"]


def new_url(client: Client, data: bytes, fmt: str = "mit", checksum: str | None = None) -> dict:
    r = client.http.post(f"{API}/upload-url", json={"filename": "rec.zip", "file_size": len(data), "file_format": fmt,
                                                    "checksum": checksum or hashlib.md5(data).hexdigest()})
    assert r.status_code == 201, r.text
    return r.json()


def put(url: str, data: bytes) -> httpx.Response:
    return httpx.put(url, content=data, headers={"Content-Type": "application/octet-stream"}, timeout=60, trust_env=False)


def test_wrong_checksum(client):
    data = mit_zip(with_atr=False)
    up = new_url(client, data, checksum="0" * 32)
    assert "MD5" in error_of(put(up["upload_url"], data), 422, "checksum_mismatch")
    assert client.status(up["task_id"])["status"] == "pending"  # nothing lost: a correct upload may follow until expiry


def test_truncated_upload_and_oversize(client):
    data = mit_zip(with_atr=False)
    up = new_url(client, data)
    error_of(put(up["upload_url"], data[:-1000]), 422, "truncated_file")
    error_of(put(up["upload_url"], data + b"extra"), 413, "file_too_large")
    assert put(up["upload_url"], data).status_code == 200
    error_of(put(up["upload_url"], data), 409, "upload_url_used")  # one-time URL


def test_tampered_upload_url(client):
    data = b"x" * 100
    up = new_url(client, data, fmt="edf")
    error_of(put(up["upload_url"].replace("token=", "token=A"), data), 403, "upload_url_invalid")


def test_unsupported_format(client):
    r = client.http.post(f"{API}/upload-url", json={"filename": "a.bin", "file_size": 10, "file_format": "aiecg", "checksum": "0" * 32})
    assert "mit" in error_of(r, 422, "unsupported_format")
    csv = b"time_s,II\n0,0.1\n0.004,0.2\n0.008,0.1\n"
    task = client.upload("a.edf", csv, "edf")  # declared EDF, content is CSV
    assert "csv" in error_of(client.submit(task, sampling_rate=250), 422, "unsupported_format")


def test_truncated_file_found_at_submit(client):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("100.hea", (WFDB / "100.hea").read_bytes())
        z.writestr("100.dat", (WFDB / "100.dat").read_bytes()[:500_000])
    task = client.upload("100.zip", buf.getvalue(), "mit")
    assert "truncated" in error_of(client.submit(task, sampling_rate=360), 422, "truncated_file")


def test_sampling_rate_mismatch(client):
    task = client.upload("100.zip", mit_zip(with_atr=False), "mit")
    assert "360" in error_of(client.submit(task, sampling_rate=250), 422, "sampling_rate_mismatch")


def test_unknown_task(client):
    for r in (client.http.get(f"{API}/status/nope"), client.http.get(f"{API}/result/nope"), client.http.post(f"{API}/cancel/nope"),
              client.submit("nope", sampling_rate=360)):
        error_of(r, 404, "unknown_task")


def test_wrong_state(client):
    data = mit_zip(with_atr=False)
    up = new_url(client, data)
    error_of(client.submit(up["task_id"], sampling_rate=360), 409, "wrong_state")  # not uploaded yet
    error_of(client.http.get(f"{API}/result/{up['task_id']}"), 409, "wrong_state")
    error_of(client.http.get(f"{API}/report/{up['task_id']}"), 409, "wrong_state")
    assert client.http.post(f"{API}/cancel/{up['task_id']}").json()["status"] == "cancelled"
    error_of(client.http.post(f"{API}/cancel/{up['task_id']}"), 409, "wrong_state")


def test_bad_and_missing_api_key(holter_server):
    url = holter_server.url + f"{API}/status/x"
    error_of(httpx.get(url, trust_env=False), 401, "unauthorized")
    error_of(httpx.get(url, headers={"Authorization": "Bearer hk_0000.wrong"}, trust_env=False), 401, "unauthorized")
    error_of(httpx.get(url, headers={"Authorization": "Basic dXNlcjpwYXNz"}, trust_env=False), 401, "unauthorized")


def test_other_keys_tasks_are_invisible(holter_server, client):
    task = new_url(client, b"x" * 10, fmt="edf")["task_id"]
    other = Client(holter_server.url, holter_server.add_key("other-ward"))
    error_of(other.http.get(f"{API}/status/{task}"), 404, "unknown_task")


def test_rate_limit_429_with_retry_after(holter_server):
    limited = Client(holter_server.url, holter_server.add_key("limited", rate_limit=3))
    codes = [limited.http.get(f"{API}/status/x").status_code for _ in range(4)]
    assert codes == [404, 404, 404, 429]
    r = limited.http.get(f"{API}/status/x")
    error_of(r, 429, "rate_limited")
    assert int(r.headers["Retry-After"]) >= 1


@pytest.mark.parametrize("body", [{"task_id": "x", "priority": "asap"}, {"task_id": "x", "analysis_options": {"report_language": "fr"}}, {}])
def test_invalid_request_body(client, body):
    error_of(client.http.post(f"{API}/submit", json=body), 422, "invalid_request")
