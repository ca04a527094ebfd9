"""Test helpers: a real Holter service (`devsync holter serve` in a subprocess on a free loopback port),
API keys via `devsync holter key create`, an HTTP client that uploads and polls, mit zips of the real records."""

from __future__ import annotations

import hashlib
import io
import signal
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import yaml

REPO = Path(__file__).resolve().parents[3]
WFDB = REPO.parent / "shared" / "data" / "wfdb"
API = "/api/v1/holter"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def devsync(*args: str) -> list[str]:
    return [sys.executable, "-m", "hub.cli", *args]


class HolterServer:
    """One service process; `restart()` kills it (SIGKILL) and starts a new one on the same data folder."""

    def __init__(self, data: Path, settings: dict):
        self.data = data
        self.settings_file = data / "settings.yaml"
        data.mkdir(parents=True, exist_ok=True)
        self.settings_file.write_text(yaml.safe_dump({"data_dir": str(data), **settings}))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log = open(data / "server.log", "ab")  # noqa: SIM115 - open for the server's lifetime, closed in stop()

    def create_key(self, name: str, rate_limit: int | None = None) -> tuple[str, str]:
        extra = ["--rate-limit", str(rate_limit)] if rate_limit else []
        out = subprocess.run(devsync("holter", "key", "create", name, "--settings", str(self.settings_file), *extra),
                             cwd=REPO, capture_output=True, text=True, check=True, timeout=60).stdout
        fields = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
        return fields["api_key"], fields["webhook_secret"]

    def add_key(self, name: str, rate_limit: int | None = None) -> str:
        """A further key straight into the service's database (the CLI path is tested by create_key)."""
        from hub.holter.auth import create_key
        from hub.holter.store import database_url, open_engine

        configured = yaml.safe_load(self.settings_file.read_text()).get("database_url")
        engine = open_engine(database_url(self.data, configured))
        try:
            return create_key(engine, name, now=time.time(), rate_limit_per_minute=rate_limit)[0]
        finally:
            engine.dispose()

    def start(self) -> None:
        self.proc = subprocess.Popen(devsync("holter", "serve", "--port", str(self.port), "--settings", str(self.settings_file),
                                             "--log-level", "warning"), cwd=REPO, stdout=self.log, stderr=self.log)
        for _ in range(300):
            if self.proc.poll() is not None:
                raise RuntimeError(f"holter server exited with {self.proc.returncode}; see {self.data / 'server.log'}")
            try:
                if httpx.get(self.url + API + "/health", timeout=1, trust_env=False).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("holter server did not answer /health within 30 s")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


class Client:
    def __init__(self, url: str, key: str):
        self.http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60, trust_env=False)

    def upload(self, name: str, data: bytes, file_format: str, *, checksum: str | None = None) -> str:
        r = self.http.post(f"{API}/upload-url", json={"filename": name, "file_size": len(data), "file_format": file_format,
                                                      "checksum": checksum or hashlib.md5(data).hexdigest()})
        assert r.status_code == 201, r.text
        body = r.json()
        put = httpx.put(body["upload_url"], content=data, headers=body["headers"], timeout=60, trust_env=False)
        assert put.status_code == 200, put.text
        return body["task_id"]

    def submit(self, task_id: str, **fields) -> httpx.Response:
        return self.http.post(f"{API}/submit", json={"task_id": task_id, **fields})

    def status(self, task_id: str) -> dict:
        r = self.http.get(f"{API}/status/{task_id}")
        assert r.status_code == 200, r.text
        return r.json()

    def wait_for(self, task_id: str, states: set[str], *, limit_s: float = 120.0, min_progress: float | None = None) -> dict:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            st = self.status(task_id)
            if st["status"] in states and (min_progress is None or st["progress"].get("ai_analyzing", 0) >= min_progress):
                return st
            if st["status"] in {"failed", "cancelled", "completed"} - states:
                raise AssertionError(f"task ended {st['status']}: {st}")
            time.sleep(0.1)
        raise AssertionError(f"task {task_id} did not reach {states} in {limit_s} s: {self.status(task_id)}")


def mit_zip(record: str = "100", *, with_atr: bool = True) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for ext in ("hea", "dat") + (("atr",) if with_atr else ()):
            z.write(WFDB / f"{record}.{ext}", f"{record}.{ext}")
    return buf.getvalue()


