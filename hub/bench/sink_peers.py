"""Loopback peers for the sink benchmark, each run in its own process so they do not share the
sink's core: an MLLP receiver that ACKs every message by its MSH-10, and a FHIR endpoint that
answers transaction Bundles with conditional-create semantics.

They do the minimum a peer must (frame, find MSH-10 / ifNoneExist, answer); they do not validate
content (the tests use python-hl7 and fhir.resources for that), so the figures measure the hub.
"""

from __future__ import annotations

import asyncio
import multiprocessing

START, END = b"\x0b", b"\x1c\x0d"


def _ack(frame: bytes) -> bytes:
    msh = frame.lstrip(START).split(b"\r", 1)[0].split(b"|")
    control_id = msh[9] if len(msh) > 9 else b""
    return (START + b"MSH|^~\\&|EHR|BENCH|DEVSYNC|HUB|20260101000000||ACK^R01^ACK|A" + control_id[:19]
            + b"|P|2.6\rMSA|AA|" + control_id + END)


async def _mllp_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            frame = await reader.readuntil(END)
            writer.write(_ack(frame))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def _serve_mllp(ready) -> None:
    server = await asyncio.start_server(_mllp_client, "127.0.0.1", 0, limit=16 * 1024 * 1024)
    ready.put(server.sockets[0].getsockname()[1])
    await asyncio.Event().wait()


async def _serve_fhir(ready) -> None:
    import orjson
    from aiohttp import web

    known: dict[str, str] = {}

    async def transaction(request: web.Request) -> web.Response:
        bundle = orjson.loads(await request.read())
        out = []
        for entry in bundle.get("entry") or []:
            key = (entry.get("request") or {}).get("ifNoneExist", "")
            if key in known:
                out.append({"response": {"status": "200 OK", "location": known[key]}})
            else:
                known[key] = f"Observation/{len(known) + 1}/_history/1"
                out.append({"response": {"status": "201 Created", "location": known[key]}})
        return web.Response(body=orjson.dumps({"resourceType": "Bundle", "type": "transaction-response",
                                               "entry": out}), content_type="application/fhir+json")

    app = web.Application(client_max_size=256 * 1024 * 1024)
    app.router.add_post("/fhir", transaction)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    ready.put(site._server.sockets[0].getsockname()[1])
    await asyncio.Event().wait()


def _run(kind: str, ready) -> None:
    asyncio.run(_serve_mllp(ready) if kind == "mllp" else _serve_fhir(ready))


class Peer:
    """`with Peer("mllp") as port:` runs the peer in a child process on a free loopback port."""

    def __init__(self, kind: str):
        self.kind = kind
        context = multiprocessing.get_context("spawn")
        self._ready = context.Queue()
        self._process = context.Process(target=_run, args=(kind, self._ready), daemon=True)

    def __enter__(self) -> int:
        self._process.start()
        try:
            return self._ready.get(timeout=60)
        except Exception as exc:  # queue.Empty: the peer died or never bound
            self._process.terminate()
            raise RuntimeError(f"bench sinks: the {self.kind} peer process did not start "
                               f"(exit code {self._process.exitcode})") from exc

    def __exit__(self, *exc) -> None:
        self._process.terminate()
        self._process.join(10)
