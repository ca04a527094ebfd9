"""One-time signed upload URLs and the streamed upload itself.

Token = base64url(`task_id.expires.nonce`) + "." + hex HMAC-SHA256 of that text with the
instance's secret. The URL is valid until `expires`, for its task only, and once: a successful
upload marks the task uploaded and the nonce spent (a failed one may be retried until expiry).
The body is written to disk as it arrives, hashed (MD5) on the way and cut off at the size limit.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import AsyncIterator
from pathlib import Path

import anyio

from hub.holter.errors import HolterError

SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def sign_upload_token(secret: bytes, task_id: str, expires: float, nonce: str) -> str:
    payload = f"{task_id}.{int(expires)}.{nonce}"
    mac = hmac.new(secret, payload.encode(), hashlib.sha256).hexdigest()
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=") + "." + mac


def verify_upload_token(secret: bytes, token: str, task_id: str, *, now: float) -> str:
    """Checks signature, task and expiry; returns the nonce (the caller checks it is unspent)."""
    encoded, _, mac = token.partition(".")
    try:
        payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
        token_task, expires, nonce = payload.split(".")
        expires_at = int(expires)
    except (ValueError, UnicodeDecodeError) as exc:
        raise HolterError("upload_url_invalid", "upload token is malformed; use the URL returned by upload-url") from exc
    good = hmac.new(secret, payload.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(good, mac) or token_task != task_id:
        raise HolterError("upload_url_invalid", "upload token signature does not match this URL")
    if now > expires_at:
        raise HolterError("upload_url_expired", f"upload URL expired at {expires_at} (epoch s); request a new one with POST upload-url")
    return nonce


def safe_filename(name: str) -> str:
    cleaned = SAFE_NAME.sub("_", Path(name).name).strip("._") or "upload"
    return cleaned[:120]


async def receive_upload(chunks: AsyncIterator[bytes], target: Path, *, declared_size: int, max_bytes: int, md5_hex: str) -> int:
    """Stream `chunks` into `target`; enforce size and checksum. Removes the file on any failure."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(target.suffix + ".part")
    digest = hashlib.md5(usedforsecurity=False)
    size = 0
    limit = min(max_bytes, declared_size)
    f = await anyio.open_file(partial, "wb")  # writes go to a worker thread, the event loop keeps serving
    try:
        async with f:
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise HolterError("file_too_large", f"upload exceeds {limit} bytes (declared file_size {declared_size}, "
                                      f"service limit {max_bytes})")
                digest.update(chunk)
                await f.write(chunk)
        if size < declared_size:
            raise HolterError("truncated_file", f"received {size} bytes, but file_size declared {declared_size}; the upload is truncated")
        if digest.hexdigest() != md5_hex.lower():
            raise HolterError("checksum_mismatch", f"MD5 of the received file is {digest.hexdigest()}, the declared checksum is {md5_hex.lower()}")
        partial.replace(target)
        return size
    finally:
        partial.unlink(missing_ok=True)
