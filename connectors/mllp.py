"""HL7 v2 over MLLP listener: PCD-01/PCD-04/PCD-10 device data and the ADT feed (asyncio, optional TLS).

One task per connection reads whatever arrives, cuts it into frames (connectors/hl7/framing.py)
and answers every frame in order with one ACK:

1. frame problem (data outside a block, oversized, unterminated)  -> AR with ERR, stream carries on
2. parse + decode (connectors/hl7/decode.py); Hl7Error              -> AE/AR with ERR naming the problem
3. `await emit(event)` for every event of the message; emit raises  -> AE (207): the sender resends
4. all events accepted                                              -> AA

So an AA is only ever sent for a message whose events are all durably accepted downstream, and a
message that was not answered AA is resent by the device: nothing it considers delivered is lost.
Time and ACK control ids come from here (the edge), never from the pure decoders.
"""

from __future__ import annotations

import asyncio
import itertools
import ssl
import time
from collections.abc import Callable

from connectors import metrics
from connectors.base import Emit
from connectors.hl7.ack import build_ack
from connectors.hl7.common import DecodeContext
from connectors.hl7.decode import DECODERS, decode_message
from connectors.hl7.dtm import parse_offset
from connectors.hl7.errors import APPLICATION_INTERNAL_ERROR, DATA_TYPE_ERROR, SEGMENT_SEQUENCE, Hl7Error
from connectors.hl7.framing import FramingProblem, MllpDeframer, frame_message
from connectors.hl7.inventory import DeviceDirectory
from connectors.hl7.message import Header, parse_message, read_header
from hub.logs import get_logger
from hub.rules.connectors import MllpListener, TlsSettings
from hub.rules.models import RuleSet

log = get_logger("connector.mllp")
READ_BYTES = 65536


def build_server_ssl_context(settings: TlsSettings) -> ssl.SSLContext | None:
    """TLS 1.2+ server context from the rules; mutual TLS when tls_client_ca is set. None: plain TCP."""
    if not settings.tls_cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.tls_cert, settings.tls_key)
    if settings.tls_client_ca:
        context.load_verify_locations(cafile=settings.tls_client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


class MllpConnector:
    """The MLLP listener. `port` is the bound port once started (useful with port 0)."""

    def __init__(
        self,
        config: MllpListener,
        directory: DeviceDirectory,
        *,
        name: str = "mllp",
        clock: Callable[[], float] = time.time,
    ):
        self.name = name
        self.config = config
        self.directory = directory
        self._clock = clock
        self._offset_min = parse_offset(config.assume_utc_offset)
        self._ssl = build_server_ssl_context(config)
        self._server: asyncio.base_events.Server | None = None
        self._emit: Emit | None = None
        self._connections: dict[asyncio.Task, bool] = {}  # task -> busy answering a message
        self._stopping = False
        self._ack_ids = itertools.count(1)
        self._ack_prefix = ""
        self.port: int | None = None
        self.messages = 0
        self.rejected = 0
        self._emitted = metrics.EVENTS_EMITTED.labels(name)
        self._emit_failures = metrics.EMIT_FAILURES.labels(name)
        self._answered: dict[tuple[str, str], metrics.Counter] = {}  # (type label, ACK code) -> MLLP_MESSAGES child

    @classmethod
    def from_rules(cls, rules: RuleSet, *, devices=None, overrides: dict | None = None, **kwargs) -> MllpConnector:
        """From `connectors.mllp` (defaults when absent); `overrides` updates fields (e.g. {"port": 2576}).
        `devices` (the registry's list of MLLP devices) is not needed: the listener serves whoever sends."""
        config = rules.connectors.mllp or MllpListener()
        if overrides:
            config = MllpListener.model_validate({**config.model_dump(), **overrides})
        return cls(config, DeviceDirectory(rules), **kwargs)

    # --- Connector protocol ---
    async def start(self, emit: Emit) -> None:
        self._emit = emit
        self._stopping = False
        self._ack_prefix = f"{int(self._clock()):x}-"
        self._server = await asyncio.start_server(
            self._on_connect, self.config.host, self.config.port, ssl=self._ssl, limit=READ_BYTES
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("listening", host=self.config.host, port=self.port, tls=self._ssl is not None)

    async def stop(self) -> None:
        """Stop accepting; let messages in flight finish (drain_timeout_s); close every connection."""
        if self._server is None:
            return
        self._stopping = True
        self._server.close()
        for task, busy in list(self._connections.items()):
            if not busy:
                task.cancel()
        pending = list(self._connections)
        if pending:
            _, still = await asyncio.wait(pending, timeout=self.config.drain_timeout_s)
            for task in still:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None
        log.info("stopped", port=self.port, messages=self.messages)

    def health(self) -> dict:
        up = self._server is not None and self._server.is_serving()
        return {
            "status": "up" if up else "down",
            "port": self.port,
            "tls": self._ssl is not None,
            "connections": len(self._connections),
            "messages": self.messages,
            "rejected": self.rejected,
        }

    # --- connections ---
    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if self._stopping or len(self._connections) >= self.config.max_connections:
            log.warning("connection refused", reason="stopping" if self._stopping else "max_connections")
            writer.close()
            return
        self._connections[task] = False
        metrics.MLLP_CONNECTIONS.inc()
        peer = writer.get_extra_info("peername")
        try:
            await self._serve(reader, writer, task)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError) as exc:
            log.info("connection lost", peer=peer, error=type(exc).__name__)
        except asyncio.CancelledError:
            pass
        except TimeoutError:
            log.info("idle connection closed", peer=peer, idle_timeout_s=self.config.idle_timeout_s)
        finally:
            self._connections.pop(task, None)
            metrics.MLLP_CONNECTIONS.dec()
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, task: asyncio.Task) -> None:
        deframer = MllpDeframer(self.config.max_frame_bytes)
        timeout = self.config.idle_timeout_s
        while not self._stopping:
            data = await (asyncio.wait_for(reader.read(READ_BYTES), timeout) if timeout else reader.read(READ_BYTES))
            if not data:
                if deframer.pending_bytes:
                    log.warning("connection closed inside a frame", pending_bytes=deframer.pending_bytes)
                return
            items = deframer.feed(data)
            if not items:
                continue
            self._connections[task] = True
            for item in items:
                writer.write(await self.answer(item))
            await writer.drain()
            self._connections[task] = False

    # --- one frame -> one ACK ---
    async def answer(self, item: bytes | FramingProblem) -> bytes:
        """Decode, emit and acknowledge one frame (or framing problem); returns the framed ACK."""
        started = time.perf_counter()
        received = self._clock()
        header: Header | None = None
        if isinstance(item, FramingProblem):
            header = read_header(item.head)
            error = Hl7Error(item.reason, code=DATA_TYPE_ERROR if item.kind == "oversized" else SEGMENT_SEQUENCE,
                             ack_code="AR")
            metrics.MLLP_FRAMING_ERRORS.labels(item.kind).inc()
        else:
            error = None
            try:
                message = parse_message(item)
                header = message.header
                context = DecodeContext(
                    self.directory,
                    received,
                    connector=self.name,
                    assume_offset_min=self._offset_min,
                    bind_patient_from_pid=self.config.bind_patient_from_pid,
                    default_alarm_priority=self.config.default_alarm_priority,
                )
                events = decode_message(message, context)
            except Hl7Error as exc:
                error = exc
                header = header or read_header(item)
            except Exception as exc:  # noqa: BLE001 - a decoder bug must not cost the connection or the message
                log.error("decoder failed", error=type(exc).__name__, detail=str(exc)[:200],
                          control_id=header.control_id if header else None)
                error = Hl7Error(
                    f"the hub failed to decode this message ({type(exc).__name__}); it was logged, resend later",
                    code=APPLICATION_INTERNAL_ERROR,
                    ack_code="AE",
                )
                header = header or read_header(item)
            if error is None:
                error = await self._emit_all(events)
        ack_code = "AA" if error is None else error.ack_code
        if error is not None:
            self.rejected += 1
            log.warning("message not accepted", ack=ack_code, code=error.code, where=error.where, reason=error.reason,
                        control_id=header.control_id if header else None)
        self.messages += 1
        ack = build_ack(
            ack_code=ack_code,
            control_id=f"{self._ack_prefix}{next(self._ack_ids)}",
            now=received,
            header=header,
            error=error,
            application=self.config.ack_application,
            facility=self.config.ack_facility,
        )
        self._count_answer(_type_label(header), ack_code)
        metrics.MLLP_ACK_SECONDS.observe(time.perf_counter() - started)
        return frame_message(ack)

    def _count_answer(self, type_label: str, ack_code: str) -> None:
        """MLLP_MESSAGES{message_type, ack_code} += 1; the children are looked up once (labels() takes a lock)."""
        key = (type_label, ack_code)
        counter = self._answered.get(key)
        if counter is None:
            counter = self._answered[key] = metrics.MLLP_MESSAGES.labels(type_label, ack_code)
        counter.inc()

    async def _emit_all(self, events) -> Hl7Error | None:
        emit = self._emit
        try:
            for event in events:
                await emit(event)
        except Exception as exc:  # noqa: BLE001 - any downstream failure means: do not acknowledge
            self._emit_failures.inc()
            log.error("emit failed", error=type(exc).__name__, detail=str(exc)[:200])
            return Hl7Error(
                f"the hub could not accept the message right now ({type(exc).__name__}); resend it",
                code=APPLICATION_INTERNAL_ERROR,
                ack_code="AE",
            )
        self._emitted.inc(len(events))
        return None


def _type_label(header: Header | None) -> str:
    """Metric label for a message type: supported ones by name, the rest as 'other' (bounded labels)."""
    if header is None:
        return "unreadable"
    key = (header.message_type, header.trigger)
    return header.type_name if key in DECODERS else "other"
