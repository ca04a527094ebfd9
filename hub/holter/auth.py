"""API keys (bearer tokens) and per-key rate limits.

A key looks like `hk_<key id>.<secret>`; only `sha256(salt || secret)` with a per-key random salt
is stored (the secret is 32 random bytes, so a fast salted hash is enough: nothing to brute-force).
The rate limit is a token bucket per key (capacity = the per-minute limit, refilled continuously),
kept in the API process; a refused request gets 429 with `Retry-After`.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import threading

from sqlalchemy import select
from sqlalchemy.engine import Engine

from hub.holter.errors import HolterError
from hub.holter.store import api_keys

PREFIX = "hk_"


def hash_secret(salt: str, secret: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + secret.encode()).hexdigest()


def create_key(engine: Engine, name: str, *, now: float, rate_limit_per_minute: int | None = None) -> tuple[str, str]:
    """Store a new key; returns (bearer token, webhook signing secret). Neither can be shown again... the
    token is not stored at all; the webhook secret is stored (it signs every delivery)."""
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_hex(16)
    webhook_secret = "whsec_" + secrets.token_urlsafe(32)
    with engine.begin() as conn:
        conn.execute(api_keys.insert().values(key_id=key_id, name=name, salt=salt, hash=hash_secret(salt, secret),
                                              webhook_secret=webhook_secret, rate_limit_per_minute=rate_limit_per_minute,
                                              revoked=False, created_at=now))
    return f"{PREFIX}{key_id}.{secret}", webhook_secret


def verify_key(engine: Engine, authorization: str | None) -> dict:
    """The key row for an `Authorization: Bearer hk_...` header, or HolterError('unauthorized')."""
    if not authorization:
        raise HolterError("unauthorized", "missing API key: send 'Authorization: Bearer hk_<id>.<secret>'")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.startswith(PREFIX) or "." not in token:
        raise HolterError("unauthorized", "malformed API key: expected 'Authorization: Bearer hk_<id>.<secret>'")
    key_id, _, secret = token[len(PREFIX):].partition(".")
    with engine.connect() as conn:
        row = conn.execute(select(api_keys).where(api_keys.c.key_id == key_id)).mappings().first()
    if row is None or row["revoked"] or not hmac.compare_digest(row["hash"], hash_secret(row["salt"], secret)):
        raise HolterError("unauthorized", "invalid or revoked API key")
    return dict(row)


class RateLimiter:
    """Token bucket per key: `limit` requests per minute, bursts up to `limit`."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key_id: str, limit: int, *, now: float) -> None:
        rate = limit / 60.0
        with self._lock:
            tokens, last = self._buckets.get(key_id, (float(limit), now))
            tokens = min(float(limit), tokens + (now - last) * rate)
            if tokens < 1.0:
                self._buckets[key_id] = (tokens, now)
                wait = math.ceil((1.0 - tokens) / rate)
                raise HolterError("rate_limited", f"rate limit of {limit} requests per minute exceeded for this key; "
                                  f"retry after {wait} s", retry_after=wait)
            self._buckets[key_id] = (tokens - 1.0, now)
