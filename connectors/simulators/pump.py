"""Infusion pump simulator: a serial-style line protocol over TCP (what a serial-to-LAN bridge gives).

    -> GET STATUS
    <- RATE=12.5;VTBI=250.0;VI=30.21;STATE=RUNNING;ALARM=NONE;TIME=1763700000.123

One request per line, one answer line per request; unknown commands get `ERR unknown command`.
Faults for tests: `garbage_next` (answer lines that are not KEY=VALUE), `silent_next` (read the
request, never answer). `request_times` records when each request arrived (simulator clock).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class PumpState:
    rate_ml_h: float = 12.5
    vtbi_ml: float = 250.0
    infused_ml: float = 0.0
    state: str = "RUNNING"
    alarm: str = "NONE"


@dataclass
class PumpSimulator:
    host: str = "127.0.0.1"
    port: int = 0
    clock: Callable[[], float] = time.time
    clock_offset_s: float = 0.0  # the pump's clock error (device time = true time + offset)
    pump: PumpState = field(default_factory=PumpState)
    garbage_next: int = 0
    silent_next: int = 0
    request_times: list[float] = field(default_factory=list)
    _server: asyncio.AbstractServer | None = None
    _last: float | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def status_line(self) -> str:
        now = self.clock()
        if self._last is not None and self.pump.state == "RUNNING":
            self.pump.infused_ml = min(self.pump.vtbi_ml, self.pump.infused_ml + self.pump.rate_ml_h * (now - self._last) / 3600)
        self._last = now
        p = self.pump
        return (f"RATE={p.rate_ml_h:g};VTBI={p.vtbi_ml:g};VI={p.infused_ml:.2f};STATE={p.state};"
                f"ALARM={p.alarm};TIME={now + self.clock_offset_s:.3f}")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                command = line.decode("ascii", "replace").strip().upper()
                self.request_times.append(self.clock())
                if self.silent_next > 0:
                    self.silent_next -= 1
                    await asyncio.sleep(3600)
                if command != "GET STATUS":
                    answer = "ERR unknown command"
                elif self.garbage_next > 0:
                    self.garbage_next -= 1
                    answer = "\x02#@! PUMP FAULT 0x1f"
                else:
                    answer = self.status_line()
                writer.write(answer.encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
