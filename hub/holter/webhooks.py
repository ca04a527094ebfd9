"""Signed webhooks with retries.

Signature: `X-Holter-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>` with
`X-Holter-Timestamp: <unix seconds>`; receivers recompute it and reject stale timestamps (replays).
Deliveries are rows in `holter_webhooks` (so they survive restarts); every attempt is a row in
`holter_webhook_attempts`. A failed attempt (connection error, timeout or non-2xx) is retried
after `backoff * 2**(attempt-1)` seconds (capped) until `webhook_attempts` is reached.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time

import httpx
from sqlalchemy import select, update
from sqlalchemy.engine import Connection, Engine

from hub.holter.settings import HolterSettings
from hub.holter.store import api_keys, webhook_attempts, webhooks
from hub.logs import get_logger

SIGNATURE_HEADER = "X-Holter-Signature"
TIMESTAMP_HEADER = "X-Holter-Timestamp"
EVENT_HEADER = "X-Holter-Event"
DELIVERY_HEADER = "X-Holter-Delivery"
log = get_logger("holter.webhooks")


def sign_payload(secret: str, timestamp: int, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, timestamp: str, body: bytes, signature: str, *, now: float, tolerance_s: float = 300.0) -> bool:
    """What a receiver does: constant-time compare, and reject timestamps older/newer than the tolerance."""
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs(now - ts) > tolerance_s:
        return False
    return hmac.compare_digest(sign_payload(secret, ts, body), signature or "")


def enqueue_webhook(conn: Connection, *, task_id: str, key_id: str, url: str, event: str, payload: dict, now: float) -> str:
    webhook_id = secrets.token_hex(10)
    conn.execute(webhooks.insert().values(id=webhook_id, task_id=task_id, key_id=key_id, url=url, event=event,
                                          body=json.dumps(payload, separators=(",", ":"), sort_keys=True), attempts=0,
                                          next_attempt_at=now, status="pending", created_at=now))
    return webhook_id


def backoff_s(attempt: int, s: HolterSettings) -> float:
    return min(s.webhook_backoff_max_s, s.webhook_backoff_s * 2 ** (attempt - 1))


def deliver_due(engine: Engine, s: HolterSettings, *, client: httpx.Client) -> int:
    """Try every webhook that is due once; returns how many were attempted."""
    now = time.time()
    with engine.connect() as conn:
        due = conn.execute(select(webhooks, api_keys.c.webhook_secret).join(api_keys, api_keys.c.key_id == webhooks.c.key_id)
                           .where(webhooks.c.status == "pending", webhooks.c.next_attempt_at <= now)
                           .order_by(webhooks.c.next_attempt_at).limit(20)).mappings().all()
    for row in due:
        attempt_once(engine, dict(row), s, client=client)
    return len(due)


def attempt_once(engine: Engine, row: dict, s: HolterSettings, *, client: httpx.Client) -> bool:
    attempt = int(row["attempts"]) + 1
    body = row["body"].encode()
    ts = int(time.time())
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign_payload(row["webhook_secret"], ts, body),
               TIMESTAMP_HEADER: str(ts), EVENT_HEADER: row["event"], DELIVERY_HEADER: row["id"]}
    started = time.monotonic()
    status_code, error = None, None
    try:
        response = client.post(row["url"], content=body, headers=headers, timeout=s.webhook_timeout_s)
        status_code = response.status_code
        if not 200 <= status_code < 300:
            error = f"receiver answered HTTP {status_code}"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"
    ok = error is None
    finished = time.time()
    status = "delivered" if ok else ("gave_up" if attempt >= s.webhook_attempts else "pending")
    with engine.begin() as conn:
        conn.execute(webhook_attempts.insert().values(webhook_id=row["id"], attempt=attempt, at=finished, status_code=status_code,
                                                      error=error, duration_s=time.monotonic() - started))
        conn.execute(update(webhooks).where(webhooks.c.id == row["id"]).values(
            attempts=attempt, status=status, next_attempt_at=finished + (0 if ok else backoff_s(attempt, s))))
    log.info("webhook attempt", delivery=row["id"], task=row["task_id"], attempt=attempt, status=status, http=status_code)
    return ok


def list_deliveries(conn: Connection, task_id: str) -> list[dict]:
    out = []
    for hook in conn.execute(select(webhooks).where(webhooks.c.task_id == task_id).order_by(webhooks.c.created_at)).mappings():
        tries = conn.execute(select(webhook_attempts).where(webhook_attempts.c.webhook_id == hook["id"])
                             .order_by(webhook_attempts.c.attempt)).mappings().all()
        out.append({"id": hook["id"], "event": hook["event"], "url": hook["url"], "status": hook["status"],
                    "attempts": [{"attempt": t["attempt"], "at": t["at"], "status_code": t["status_code"], "error": t["error"]} for t in tries]})
    return out
