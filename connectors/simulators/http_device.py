"""HTTP-polled device simulator (e.g. a spot-check vital signs monitor with a REST status page).

    GET /status  ->  200 {"SPO2": 97, "PR": 72, "STATE": "OK", "TIME": 1763700000.123}

Faults for tests: `fail_next` answers HTTP 500, `slow_next` waits `slow_s` before answering
(longer than the poller's timeout), `garbage_next` answers 200 with a body that is not JSON.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class HttpDeviceSimulator:
    host: str = "127.0.0.1"
    port: int = 0
    clock: Callable[[], float] = time.time
    values: dict[str, object] = field(default_factory=lambda: {"SPO2": 97, "PR": 72, "STATE": "OK"})
    fail_next: int = 0
    slow_next: int = 0
    slow_s: float = 5.0
    garbage_next: int = 0
    requests: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/status"

    async def start(self) -> int:
        app = web.Application()
        app.router.add_get("/status", self._status)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _status(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.fail_next > 0:
            self.fail_next -= 1
            return web.Response(status=500, text="internal device error")
        if self.slow_next > 0:
            self.slow_next -= 1
            await asyncio.sleep(self.slow_s)
        if self.garbage_next > 0:
            self.garbage_next -= 1
            return web.Response(status=200, text="<html>oops</html>", content_type="text/html")
        return web.json_response({**self.values, "TIME": round(self.clock(), 3)})
