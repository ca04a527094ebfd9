"""Authorization headers for HTTP sinks: a bearer token from a file or the environment, or an
OAuth2 client-credentials token fetched from the token endpoint and renewed before it expires.

Secrets come from files or environment variables only (never from rule files) and never
reach the logs.
"""

from __future__ import annotations

import base64
import os
import time
from pathlib import Path
from urllib.parse import quote_plus

import aiohttp

from hub.errors import RuleError, SinkError
from hub.rules.sinks import HttpAuth, OAuth2ClientCredentials


def read_secret(file: str | None, env: str | None, where: str) -> str:
    if file is not None:
        try:
            secret = Path(file).read_text().strip()
        except OSError as exc:
            raise RuleError(f"{where}: cannot read secret file {file!r} ({exc.strerror}); "
                            "give a readable file holding only the secret") from exc
        if not secret:
            raise RuleError(f"{where}: secret file {file!r} is empty")
        return secret
    secret = os.environ.get(env or "", "").strip()
    if not secret:
        raise RuleError(f"{where}: environment variable {env!r} is not set or empty")
    return secret


def basic_auth(client_id: str, secret: str) -> str:
    """client_secret_basic (RFC 6749 2.3.1): both parts form-urlencoded, then Basic."""
    pair = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return "Basic " + base64.b64encode(pair).decode("ascii")


class TokenSource:
    """`await header(session)` -> {"Authorization": "Bearer ..."} (or {} without auth)."""

    def __init__(self, auth: HttpAuth | None, where: str, ssl_context=None):
        self.auth = auth
        self._ssl = ssl_context  # the token endpoint is trusted with the sink's TLS settings
        self.where = where
        self._token: str | None = None
        self._expires_at = 0.0
        self._file_mtime: float | None = None
        if auth is not None and auth.oauth2 is None:
            read_secret(auth.token_file, auth.token_env, f"{where}.auth")  # fail early, with a clear message
        elif auth is not None:
            read_secret(auth.oauth2.client_secret_file, auth.oauth2.client_secret_env, f"{where}.auth.oauth2")

    async def header(self, session: aiohttp.ClientSession) -> dict[str, str]:
        if self.auth is None:
            return {}
        if self.auth.oauth2 is not None:
            if self._token is None or time.monotonic() >= self._expires_at:
                await self._fetch(session, self.auth.oauth2)
        else:
            self._token = self._static_token()
        return {"Authorization": f"Bearer {self._token}"}

    def invalidate(self) -> None:
        """The server said 401: fetch (or re-read) the token before the next request."""
        self._token = None
        self._file_mtime = None

    def _static_token(self) -> str:
        if self.auth.token_file is None:
            return read_secret(None, self.auth.token_env, f"{self.where}.auth")
        mtime = Path(self.auth.token_file).stat().st_mtime
        if self._token is None or mtime != self._file_mtime:
            self._token = read_secret(self.auth.token_file, None, f"{self.where}.auth")
            self._file_mtime = mtime
        return self._token

    async def _fetch(self, session: aiohttp.ClientSession, oauth: OAuth2ClientCredentials) -> None:
        secret = read_secret(oauth.client_secret_file, oauth.client_secret_env, f"{self.where}.auth.oauth2")
        form = {"grant_type": "client_credentials"}
        if oauth.scope:
            form["scope"] = oauth.scope
        try:
            async with session.post(oauth.token_url, data=form, ssl=self._ssl,
                                    headers={"Authorization": basic_auth(oauth.client_id, secret)}) as response:
                body = await response.json(content_type=None) if response.status < 500 else {}
                if response.status != 200 or "access_token" not in (body or {}):
                    raise SinkError(f"{self.where}.auth.oauth2: token endpoint {oauth.token_url} answered "
                                    f"{response.status} ({(body or {}).get('error', 'no access_token')})",
                                    retriable=True)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SinkError(f"{self.where}.auth.oauth2: token endpoint {oauth.token_url} unreachable "
                            f"({type(exc).__name__})", retriable=True) from exc
        self._token = body["access_token"]
        lifetime = float(body.get("expires_in", 300))
        self._expires_at = time.monotonic() + max(0.0, lifetime - oauth.refresh_margin_s)
