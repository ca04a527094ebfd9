"""Test FHIR server: a small real HTTP server (aiohttp) that STANDS IN FOR THE EHR in the tests.

It accepts FHIR R4 transaction Bundles POSTed to its base URL, validates every resource with
fhir.resources (a resource that does not validate fails the whole transaction with 400 and an
OperationOutcome, as a real server would), and implements conditional create: an entry with
`request.ifNoneExist: identifier=<system>|<value>` creates nothing when a resource with that
identifier exists (200 OK with its Location) and creates it otherwise (201 Created).

Knobs for fault injection:
    outage(seconds, lose_first=True)  answer 503 for `seconds`; with lose_first the first request of
                                      the outage is committed but answered 503 (a lost response)
    throttle(n, retry_after)          answer the next n requests 429 with Retry-After
    reject_loinc                      LOINC codes the "EHR" refuses (422 + OperationOutcome)
    token / oauth_clients             require a bearer token; /token issues them (client credentials)
It also serves GET [base]/Observation?identifier=system|value (searchset) and records every request.
"""

from __future__ import annotations

import base64
import itertools
import secrets
import time
from dataclasses import dataclass, field

import orjson
from aiohttp import web
from fhir.resources import get_fhir_model_class
from pydantic import ValidationError

FHIR_JSON = "application/fhir+json"


@dataclass
class Request:
    at: float  # time.monotonic()
    status: int
    entries: int


@dataclass
class FhirTestServer:
    token: str | None = None  # static bearer token required (None = no auth unless oauth_clients)
    oauth_clients: dict[str, str] = field(default_factory=dict)  # client id -> secret
    token_lifetime_s: int = 3600
    reject_loinc: set[str] = field(default_factory=set)
    resources: dict[str, dict] = field(default_factory=dict)  # "Observation/<id>" -> resource
    by_identifier: dict[str, str] = field(default_factory=dict)  # "system|value" -> "Observation/<id>"
    requests: list[Request] = field(default_factory=list)
    created: int = 0
    matched: int = 0
    port: int = 0
    _issued: set[str] = field(default_factory=set)
    _outage_until: float = 0.0
    _lose_next: bool = False
    _throttle: int = 0
    _retry_after: int = 0
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    _runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/fhir"

    async def start(self, ssl_context=None) -> FhirTestServer:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/fhir", self._transaction)
        app.router.add_get("/fhir/Observation", self._search)
        app.router.add_post("/token", self._token)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        await self._runner.cleanup()

    # --- fault knobs ---
    def outage(self, seconds: float, *, lose_first: bool = True) -> None:
        self._outage_until = time.monotonic() + seconds
        self._lose_next = lose_first

    def throttle(self, n: int, retry_after: int) -> None:
        self._throttle, self._retry_after = n, retry_after

    # --- handlers ---
    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        client, secret = _basic(request.headers.get("Authorization", ""))
        if form.get("grant_type") != "client_credentials" or self.oauth_clients.get(client) != secret:
            return web.json_response({"error": "invalid_client"}, status=401)
        token = secrets.token_hex(16)
        self._issued.add(token)
        return web.json_response({"access_token": token, "token_type": "Bearer",
                                  "expires_in": self.token_lifetime_s})

    def _authorised(self, request: web.Request) -> bool:
        if self.token is None and not self.oauth_clients:
            return True
        header = request.headers.get("Authorization", "")
        given = header[7:] if header.startswith("Bearer ") else None
        return given is not None and (given == self.token or given in self._issued)

    async def _transaction(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return self._answer(401, _outcome("login", "bearer token missing or not valid"), 0)
        body = await request.read()
        bundle = orjson.loads(body)
        entries = bundle.get("entry") or []
        if self._throttle > 0:
            self._throttle -= 1
            return self._answer(429, _outcome("throttled", "too many requests"), len(entries),
                                {"Retry-After": str(self._retry_after)})
        if time.monotonic() < self._outage_until:
            if self._lose_next:  # commit, then lose the answer
                self._lose_next = False
                self._commit(bundle)
            return self._answer(503, _outcome("transient", "service unavailable"), len(entries))
        problem = self._validate(bundle)
        if problem is not None:
            status, text = problem
            return self._answer(status, _outcome("invalid", text), len(entries))
        return self._answer(200, self._commit(bundle), len(entries))

    def _validate(self, bundle: dict) -> tuple[int, str] | None:
        if bundle.get("resourceType") != "Bundle" or bundle.get("type") != "transaction":
            return 400, "expected a transaction Bundle"
        for n, entry in enumerate(bundle.get("entry") or []):
            resource = entry.get("resource") or {}
            try:
                get_fhir_model_class(resource.get("resourceType", "")).model_validate(resource)
            except (ValidationError, KeyError, ValueError) as exc:
                return 400, f"entry[{n}]: {str(exc)[:500]}"
            codes = {c.get("code") for c in (resource.get("code") or {}).get("coding", [])}
            if codes & self.reject_loinc:
                return 422, f"entry[{n}]: code {min(codes & self.reject_loinc)} is not accepted by this EHR"
        return None

    def _commit(self, bundle: dict) -> dict:
        out = []
        for entry in bundle.get("entry") or []:
            resource = entry["resource"]
            condition = (entry.get("request") or {}).get("ifNoneExist", "")
            key = condition.split("=", 1)[1] if condition.startswith("identifier=") else None
            if key is not None and key in self.by_identifier:
                self.matched += 1
                out.append({"response": {"status": "200 OK", "location": self.by_identifier[key] + "/_history/1"}})
                continue
            ref = f"{resource['resourceType']}/{next(self._ids)}"
            self.resources[ref] = {**resource, "id": ref.split("/")[1]}
            for ident in resource.get("identifier") or []:
                self.by_identifier[f"{ident.get('system')}|{ident.get('value')}"] = ref
            self.created += 1
            out.append({"response": {"status": "201 Created", "location": ref + "/_history/1"}})
        return {"resourceType": "Bundle", "type": "transaction-response", "entry": out}

    async def _search(self, request: web.Request) -> web.Response:
        key = request.query.get("identifier", "")
        ref = self.by_identifier.get(key)
        entries = [{"resource": self.resources[ref]}] if ref else []
        return web.Response(body=orjson.dumps({"resourceType": "Bundle", "type": "searchset",
                                               "total": len(entries), "entry": entries}), content_type=FHIR_JSON)

    def _answer(self, status: int, doc: dict, entries: int, headers: dict | None = None) -> web.Response:
        self.requests.append(Request(time.monotonic(), status, entries))
        return web.Response(status=status, body=orjson.dumps(doc), headers=headers, content_type=FHIR_JSON)

    # --- checks ---
    def observations(self) -> list[dict]:
        return [r for r in self.resources.values() if r["resourceType"] == "Observation"]


def _outcome(code: str, text: str) -> dict:
    return {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": code, "diagnostics": text}]}


def _basic(header: str) -> tuple[str, str]:
    if not header.startswith("Basic "):
        return "", ""
    client, _, secret = base64.b64decode(header[6:]).decode().partition(":")
    return client, secret
