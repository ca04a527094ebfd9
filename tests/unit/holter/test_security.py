from __future__ import annotations

import hashlib
import hmac

import pytest

from hub.holter.auth import RateLimiter, create_key, verify_key
from hub.holter.errors import HolterError
from hub.holter.store import api_keys, open_engine
from hub.holter.uploads import sign_upload_token, verify_upload_token
from hub.holter.webhooks import sign_payload, verify_signature

SECRET = b"k" * 32


def test_webhook_signature_is_hmac_over_timestamp_dot_body():
    body = b'{"event":"analysis.completed"}'
    sig = sign_payload("whsec_x", 1700000000, body)
    assert sig == "sha256=" + hmac.new(b"whsec_x", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert verify_signature("whsec_x", "1700000000", body, sig, now=1700000010)
    assert not verify_signature("whsec_x", "1700000000", body + b" ", sig, now=1700000010)  # tampered body
    assert not verify_signature("whsec_x", "1700000001", body, sig, now=1700000010)  # other timestamp
    assert not verify_signature("whsec_x", "1700000000", body, sig, now=1700000000 + 301)  # replay, too old
    assert not verify_signature("whsec_y", "1700000000", body, sig, now=1700000010)  # other secret


def test_upload_token_roundtrip_and_rejections():
    token = sign_upload_token(SECRET, "task1", 1000.0, "nonce1")
    assert verify_upload_token(SECRET, token, "task1", now=999.0) == "nonce1"
    with pytest.raises(HolterError) as e:
        verify_upload_token(SECRET, token, "task1", now=1001.0)
    assert e.value.code == "upload_url_expired" and e.value.status == 410
    with pytest.raises(HolterError) as e:
        verify_upload_token(SECRET, token, "task2", now=999.0)
    assert e.value.code == "upload_url_invalid"
    with pytest.raises(HolterError) as e:
        verify_upload_token(b"other" * 8, token, "task1", now=999.0)
    assert e.value.code == "upload_url_invalid"
    with pytest.raises(HolterError) as e:
        verify_upload_token(SECRET, "garbage", "task1", now=999.0)
    assert e.value.code == "upload_url_invalid"


def test_keys_are_stored_hashed_and_verified(tmp_path):
    engine = open_engine(f"sqlite:///{tmp_path / 'k.db'}")
    token, webhook_secret = create_key(engine, "ward", now=1.0, rate_limit_per_minute=5)
    key_id, secret = token[3:].split(".")
    with engine.connect() as conn:
        row = conn.execute(api_keys.select()).mappings().one()
    assert secret not in row["hash"] and token not in str(dict(row))
    assert row["hash"] == hashlib.sha256(bytes.fromhex(row["salt"]) + secret.encode()).hexdigest()
    assert verify_key(engine, f"Bearer {token}")["key_id"] == key_id
    for bad in (None, "Basic abc", f"Bearer {token}x", "Bearer hk_nope.x"):
        with pytest.raises(HolterError) as e:
            verify_key(engine, bad)
        assert e.value.code == "unauthorized" and e.value.status == 401
    assert webhook_secret.startswith("whsec_")


def test_rate_limiter_refuses_with_retry_after_then_refills():
    limiter = RateLimiter()
    for _ in range(3):
        limiter.take("k", 3, now=100.0)
    with pytest.raises(HolterError) as e:
        limiter.take("k", 3, now=100.0)
    assert e.value.code == "rate_limited" and e.value.status == 429 and e.value.retry_after == 20
    limiter.take("k", 3, now=120.0)  # one token back after 20 s at 3/min
    limiter.take("other", 3, now=100.0)  # per key
