"""Ventilator simulator for the hybrid connector: pushes change events, answers status polls,
and can drop a configurable share of its events (a lossy event channel).

One TCP port, line protocol, `KEY=VALUE;...` lines:

    -> SUBSCRIBE                      the connection then receives pushed lines:
    <- TYPE=EVENT;SEQ=12;TIME=1763700000.125;PEEP=6
    <- TYPE=HEARTBEAT;SEQ=12;TIME=1763700001.000
    -> GET STATUS                     one answer with the whole state and the last event SEQ:
    <- TYPE=STATUS;SEQ=12;TIME=...;PEEP=6;FIO2=40;RR=14;VT=450;ALARM=NONE

Every change gets the next SEQ whether or not it is sent, so a receiver can see gaps.
`drop_ratio` (0..1) drops that share of change events (seeded, reproducible); `events_enabled`
False silences the event channel entirely (heartbeats too) while the state keeps changing.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field


def default_state() -> dict[str, str]:
    return {"PEEP": "5", "FIO2": "40", "RR": "14", "VT": "450", "ALARM": "NONE"}


@dataclass
class VentilatorSimulator:
    host: str = "127.0.0.1"
    port: int = 0
    drop_ratio: float = 0.0
    seed: int = 1
    heartbeat_s: float = 1.0
    clock: Callable[[], float] = time.time
    state: dict[str, str] = field(default_factory=default_state)
    events_enabled: bool = True
    seq: int = 0
    sent: list[int] = field(default_factory=list)
    dropped: list[int] = field(default_factory=list)
    polls: int = 0
    _rng: random.Random = field(init=False)
    _server: asyncio.AbstractServer | None = None
    _subscribers: set[asyncio.StreamWriter] = field(default_factory=set)
    _heartbeat: asyncio.Task | None = None

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        self._heartbeat = asyncio.create_task(self._beat())
        return self.port

    async def stop(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.gather(self._heartbeat, return_exceptions=True)
        for writer in list(self._subscribers):
            writer.close()
        self._subscribers.clear()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def true_state(self) -> dict[str, str]:
        return dict(self.state)

    def set_value(self, key: str, value: str) -> bool:
        """Change the device state; returns True when the change event was sent (not dropped)."""
        self.state[key] = value
        self.seq += 1
        if not self.events_enabled or self._rng.random() < self.drop_ratio:
            self.dropped.append(self.seq)
            return False
        self.sent.append(self.seq)
        self._push(f"TYPE=EVENT;SEQ={self.seq};TIME={self.clock():.3f};{key}={value}")
        return True

    def status_line(self) -> str:
        values = ";".join(f"{k}={v}" for k, v in self.state.items())
        return f"TYPE=STATUS;SEQ={self.seq};TIME={self.clock():.3f};{values}"

    def _push(self, line: str) -> None:
        data = line.encode() + b"\n"
        for writer in list(self._subscribers):
            if writer.is_closing():
                self._subscribers.discard(writer)
            else:
                writer.write(data)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            if self.events_enabled:
                self._push(f"TYPE=HEARTBEAT;SEQ={self.seq};TIME={self.clock():.3f}")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                command = line.decode("ascii", "replace").strip().upper()
                if command == "SUBSCRIBE":
                    self._subscribers.add(writer)
                    writer.write(b"TYPE=SUBSCRIBED;SEQ=" + str(self.seq).encode() + b"\n")
                elif command == "GET STATUS":
                    self.polls += 1
                    writer.write(self.status_line().encode() + b"\n")
                else:
                    writer.write(b"ERR unknown command\n")
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._subscribers.discard(writer)
            writer.close()
