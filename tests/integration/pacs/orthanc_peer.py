"""A real PACS for the tests: Debian's Orthanc started as a plain process on free loopback ports.

    peer = start_orthanc(tmp_dir)     # installs the package first if missing (scripts/install-test-peers.sh)
    peer.instance_file(sop_uid)       # the stored DICOM bytes, through Orthanc's REST API
    peer.stop()                       # by PID

Orthanc 1.10 binds 0.0.0.0 (it has no bind-address setting); remote access is off, so its
REST API answers loopback only.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[3]
INSTALL = ROOT / "scripts" / "install-test-peers.sh"
AET = "ORTHANC"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_orthanc() -> str:
    binary = shutil.which("Orthanc") or shutil.which("Orthanc", path="/usr/sbin:/usr/bin")
    if binary is None:
        subprocess.run(["bash", str(INSTALL)], check=True, timeout=900)
        binary = shutil.which("Orthanc", path="/usr/sbin:/usr/bin")
    if binary is None:
        raise RuntimeError(f"Orthanc is not installed and {INSTALL} could not install it")
    return binary


@dataclass
class OrthancPeer:
    process: subprocess.Popen
    http_port: int
    dicom_port: int
    workdir: Path
    aet: str = AET

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def get(self, path: str, **kw):
        response = requests.get(self.url + path, timeout=10, **kw)
        response.raise_for_status()
        return response

    def instances(self) -> list[str]:
        return self.get("/instances").json()

    def lookup(self, sop_instance_uid: str) -> str | None:
        response = requests.post(self.url + "/tools/lookup", data=sop_instance_uid, timeout=10)
        response.raise_for_status()
        found = [item["ID"] for item in response.json() if item["Type"] == "Instance"]
        return found[0] if found else None

    def instance_file(self, sop_instance_uid: str) -> bytes:
        orthanc_id = self.lookup(sop_instance_uid)
        if orthanc_id is None:
            raise KeyError(f"Orthanc holds no instance {sop_instance_uid}")
        return self.get(f"/instances/{orthanc_id}/file").content

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start_orthanc(workdir: Path, *, timeout_s: float = 30.0) -> OrthancPeer:
    binary = ensure_orthanc()
    workdir.mkdir(parents=True, exist_ok=True)
    storage = workdir / "storage"
    http_port, dicom_port = free_port(), free_port()
    config = {
        "Name": "devsync-test-pacs", "DicomAet": AET, "HttpPort": http_port, "DicomPort": dicom_port,
        "StorageDirectory": str(storage), "IndexDirectory": str(storage), "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False, "DicomCheckCalledAet": False, "UnknownSopClassAccepted": True,
        "Plugins": [], "HttpServerEnabled": True, "DicomServerEnabled": True, "StableAge": 1,
    }
    cfg = workdir / "orthanc.json"
    cfg.write_text(json.dumps(config))
    log = (workdir / "orthanc.log").open("wb")
    process = subprocess.Popen([binary, str(cfg)], stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    peer = OrthancPeer(process, http_port, dicom_port, workdir)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Orthanc exited with {process.returncode}: {(workdir / 'orthanc.log').read_text()[-2000:]}")
        try:
            requests.get(peer.url + "/system", timeout=1).raise_for_status()
            with socket.create_connection(("127.0.0.1", dicom_port), timeout=1):
                return peer
        except (requests.RequestException, OSError):
            time.sleep(0.1)
    peer.stop()
    raise RuntimeError(f"Orthanc did not answer on {peer.url} within {timeout_s:g} s")
