"""MQTT upstream: paho-mqtt, QoS 1, one topic per gateway (rules: edge.mqtt_topic_prefix/<gateway_id>/events).

A row counts as delivered only when the broker's PUBACK for its PUBLISH arrives. On a
disconnect the client is dropped whole (a fresh one is made by the next connect), so
paho never retransmits behind the forwarder's back: the forwarder resends the un-acked
rows itself, in their original order.
"""

from __future__ import annotations

import asyncio
import itertools
import ssl
import threading

import paho.mqtt.client as mqtt

from edge_buffer.errors import EdgeError, UpstreamError
from edge_buffer.upstream import OutgoingMessage, SendResult
from hub.logs import get_logger
from hub.rules.edge import EdgeRules

log = get_logger("edge.upstream.mqtt")
_instance = itertools.count(1)


class MqttUpstream:
    kind = "mqtt"

    def __init__(self, host: str, port: int, settings: EdgeRules, *, inflight: int = 0):
        self.host, self.port = host, port
        self.settings = settings
        self.topic = settings.mqtt_topic
        scheme = "mqtts" if settings.mqtt_tls_ca else "mqtt"
        self.target = f"{scheme}://{host}:{port}/{self.topic}"
        self.inflight = inflight
        self._tls = tls_context(settings)
        self._client: mqtt.Client | None = None
        self._lock = threading.Lock()
        self._acked: set[int] = set()
        self._awaiting: set[int] | None = None  # mids of the batch in flight still without PUBACK
        self._down = threading.Event()
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # ---------- connect ----------
    async def connect(self) -> None:
        await self.close()
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        connected = asyncio.Event()
        failure: list[str] = []
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"devsync-edge-{self.settings.gateway_id}-{next(_instance)}",
            clean_session=True,
            reconnect_on_failure=False,
        )
        if self._tls is not None:
            client.tls_set_context(self._tls)
        client.max_inflight_messages_set(self.inflight)  # 0: no limit; a batch (forward_batch_events) bounds it
        client.max_queued_messages_set(0)

        def on_connect(_c, _u, _flags, reason, _props) -> None:
            if reason.is_failure:
                failure.append(str(reason))
            self._loop.call_soon_threadsafe(connected.set)

        client.on_connect = on_connect
        client.on_publish = self._on_publish
        client.on_disconnect = self._on_disconnect
        self._down.clear()
        try:
            await asyncio.to_thread(client.connect, self.host, self.port, 30)
        except OSError as exc:
            raise UpstreamError(f"{self.target}: cannot connect ({exc})") from exc
        client.loop_start()
        try:
            await asyncio.wait_for(connected.wait(), timeout=min(self.settings.ack_timeout_s, 10.0))
        except TimeoutError:
            failure.append("no CONNACK")
        if failure or self._down.is_set():
            await asyncio.to_thread(_stop, client)
            raise UpstreamError(f"{self.target}: broker refused the session ({', '.join(failure) or 'disconnected'})")
        self._client = client

    def _on_publish(self, _c, _u, mid: int, _reason, _props) -> None:
        with self._lock:
            self._acked.add(mid)
            waiting = self._awaiting
            if waiting is None or mid not in waiting:
                return
            waiting.discard(mid)
            if waiting:
                return
        self._poke()  # one wake-up per batch, not per PUBACK

    def _on_disconnect(self, _c, _u, _flags, reason, _props) -> None:
        self._down.set()
        log.warning("mqtt upstream disconnected", target=self.target, reason=str(reason))
        self._poke()

    def _poke(self) -> None:
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    # ---------- send ----------
    async def send(self, batch: list[OutgoingMessage]) -> SendResult:
        client = self._client
        if client is None or self._down.is_set():
            raise UpstreamError(f"{self.target}: not connected")
        result = SendResult()
        self._wake.clear()
        # publishing a batch is CPU work in paho: keep it off the event loop
        mids, result.error = await asyncio.to_thread(self._publish_all, client, batch)
        with self._lock:
            self._awaiting = {mid for mid, _ in mids} - self._acked  # PUBACKs may have raced ahead
        deadline = self._loop.time() + self.settings.ack_timeout_s
        while True:
            with self._lock:
                done = not self._awaiting
            if done or self._down.is_set() or self._loop.time() >= deadline:
                break
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.0, deadline - self._loop.time()))
            except TimeoutError:
                pass
            self._wake.clear()
        with self._lock:
            self._awaiting = None
            for mid, row_id in mids:
                if mid in self._acked:
                    self._acked.discard(mid)
                    result.acked.append(row_id)
        if len(result.acked) < len(batch) and result.error is None:
            reason = "disconnected" if self._down.is_set() else "PUBACK timeout"
            result.error = f"{self.target}: {len(batch) - len(result.acked)} not acknowledged ({reason})"
        return result

    def _publish_all(self, client: mqtt.Client, batch: list[OutgoingMessage]) -> tuple[list[tuple[int, int]], str | None]:
        mids: list[tuple[int, int]] = []  # (mid, row id) in publish order
        for msg in batch:
            info = client.publish(self.topic, msg.value, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                return mids, f"{self.target}: publish failed ({mqtt.error_string(info.rc)})"
            mids.append((info.mid, msg.row_id))
        return mids, None

    async def close(self) -> None:
        client, self._client = self._client, None
        with self._lock:
            self._acked.clear()
        if client is not None:
            await asyncio.to_thread(_stop, client)


def tls_context(settings: EdgeRules) -> ssl.SSLContext | None:
    """TLS 1.2+ context from edge.mqtt_tls_* (None without a CA); bad files fail here, at start."""
    if not settings.mqtt_tls_ca:
        return None
    try:
        context = ssl.create_default_context(cafile=settings.mqtt_tls_ca)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if settings.mqtt_tls_cert:
            context.load_cert_chain(settings.mqtt_tls_cert, settings.mqtt_tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise EdgeError(f"edge.mqtt_tls_ca/cert/key: cannot load TLS files ({exc}); expected PEM files") from exc
    return context


def _stop(client: mqtt.Client) -> None:
    try:
        client.disconnect()
    finally:
        client.loop_stop()
