"""A private Mosquitto broker on a free loopback port, with persistence, for restart tests."""

from __future__ import annotations

import getpass
import socket
import subprocess
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateMosquitto:
    def __init__(self, workdir: Path):
        self.port = free_port()
        self.dir = workdir
        (workdir / "data").mkdir(parents=True, exist_ok=True)
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {workdir / 'data'}/\nautosave_interval 1\nmax_queued_messages 100000\n"
            f"log_dest file {workdir / 'mosquitto.log'}\n"
            # run as whoever runs the tests: as root, mosquitto would otherwise switch to the
            # `mosquitto` user, which cannot write the persistence files under a private tmp dir
            f"user {getpass.getuser()}\n"
        )
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"mosquitto exited: {(self.dir / 'mosquitto.log').read_text()[-2000:]}")
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on {self.port}")

    def stop(self) -> None:
        """SIGTERM: mosquitto writes its persistence file and exits."""
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


class Publisher:
    """A QoS 1 publisher with a persistent session (the 'device' side: a message counts as
    delivered once its PUBACK came back)."""

    def __init__(self, port: int, client_id: str, host: str = "127.0.0.1"):
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        self.client.reconnect_delay_set(0.05, 0.5)
        self.client.connect_async(host, port, keepalive=10)
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes, timeout_s: float = 20.0) -> bool:
        """Publish QoS 1 once connected; True when the broker's PUBACK came back."""
        deadline = time.time() + timeout_s
        while not self.client.is_connected() and time.time() < deadline:
            time.sleep(0.02)
        info = self.client.publish(topic, payload, qos=1)
        while time.time() < deadline:
            # paho keeps a QoS 1 message queued across a reconnect and resends it; `_published`
            # is set on PUBACK even when the first send attempt reported "not connected"
            if info._published:
                return True
            time.sleep(0.005)
        return bool(info._published)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
