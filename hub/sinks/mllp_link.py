"""One MLLP client connection: one message in flight, its ACK matched by MSA-2 to MSH-10.

Framing is MLLP (0x0B message 0x1C 0x0D). An answer whose MSA-2 names another control id (a
late ACK of an earlier message, a stray) is ignored and counted, never credited to the message
in flight. After a timeout the connection is closed, so no late ACK can reach the next message;
the caller reconnects and resends the same message with the same MSH-10.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass

from hub.errors import SinkError

START, END = b"\x0b", b"\x1c\x0d"


@dataclass(frozen=True, slots=True)
class Ack:
    code: str  # MSA-1: AA / AE / AR (or CA / CE / CR)
    control_id: str  # MSA-2: the MSH-10 it answers
    text: str  # MSA-3 and ERR segments, for the DLQ reason
    seconds: float

    @property
    def accepted(self) -> bool:
        return self.code in ("AA", "CA")


def parse_ack(frame: bytes) -> Ack | None:
    """The MSA of an ACK frame, or None when there is no MSA segment."""
    text = frame.decode("utf-8", errors="replace").strip(START.decode() + "\r\n\x1c")
    segments = [s for s in text.replace("\n", "\r").split("\r") if s]
    separator = segments[0][3] if segments and segments[0].startswith("MSH") and len(segments[0]) > 3 else "|"
    msa = next((s.split(separator) for s in segments if s.startswith("MSA")), None)
    if msa is None or len(msa) < 3:
        return None
    errors = [s for s in segments if s.startswith("ERR")]
    detail = "; ".join(p for p in [msa[3] if len(msa) > 3 else "", *errors] if p)
    return Ack(code=msa[1].strip(), control_id=msa[2].strip(), text=detail, seconds=0.0)


class MllpLink:
    def __init__(self, host: str, port: int, *, ssl_context: ssl.SSLContext | None = None,
                 server_hostname: str | None = None, connect_timeout_s: float = 5.0,
                 ack_timeout_s: float = 10.0, max_frame_bytes: int = 1_048_576, on_stray_ack=None):
        self.host, self.port = host, port
        self.peer = f"{host}:{port}"
        self._ssl = ssl_context
        self._server_hostname = server_hostname
        self._connect_timeout = connect_timeout_s
        self._ack_timeout = ack_timeout_s
        self._max_frame = max_frame_bytes
        self._on_stray_ack = on_stray_ack or (lambda ack: None)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> None:
        kwargs = {"limit": self._max_frame}
        if self._ssl is not None:
            kwargs.update(ssl=self._ssl, server_hostname=self._server_hostname or self.host)
        try:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port, **kwargs), self._connect_timeout)
        except (TimeoutError, OSError, ssl.SSLError) as exc:
            raise SinkError(f"mllp {self.peer}: cannot connect ({type(exc).__name__}: {exc})", retriable=True) from exc

    async def send(self, message: str, control_id: str) -> Ack:
        """Send one message and wait for the ACK whose MSA-2 is `control_id` (retriable SinkError otherwise)."""
        if self._writer is None:
            await self._connect()
        started = time.monotonic()
        deadline = started + self._ack_timeout
        try:
            self._writer.write(START + message.encode("utf-8") + END)
            await self._writer.drain()
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                frame = await asyncio.wait_for(self._reader.readuntil(END), remaining)
                ack = parse_ack(frame)
                if ack is not None and ack.control_id == control_id:
                    return Ack(ack.code, ack.control_id, ack.text, time.monotonic() - started)
                self._on_stray_ack(ack)
        except TimeoutError as exc:
            await self.close()
            raise SinkError(f"mllp {self.peer}: no ACK for MSH-10 {control_id} within {self._ack_timeout:g} s",
                            retriable=True) from exc
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ssl.SSLError) as exc:
            await self.close()
            raise SinkError(f"mllp {self.peer}: connection lost waiting for ACK of MSH-10 {control_id} "
                            f"({type(exc).__name__})", retriable=True) from exc

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            try:
                await asyncio.wait_for(writer.wait_closed(), 1.0)
            except (TimeoutError, OSError, ssl.SSLError):
                pass
