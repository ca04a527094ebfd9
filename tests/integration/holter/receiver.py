"""A real HTTP webhook receiver for the tests: verifies signature and timestamp like a client would,
can be told to fail the first N deliveries (to exercise retries)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from hub.holter.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature


class WebhookReceiver:
    def __init__(self, secret: str, *, fail_first: int = 0):
        self.secret = secret
        self.fail_first = fail_first
        self.received: list[dict] = []  # every request: verified flag, payload, status answered
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                ok = verify_signature(receiver.secret, self.headers.get(TIMESTAMP_HEADER), body,
                                      self.headers.get(SIGNATURE_HEADER), now=time.time())
                with receiver._lock:
                    fail = len(receiver.received) < receiver.fail_first
                    status = 503 if fail else (200 if ok else 401)
                    receiver.received.append({"verified": ok, "payload": json.loads(body), "status": status,
                                              "headers": dict(self.headers)})
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, count: int, limit_s: float = 60.0) -> list[dict]:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.05)
        raise AssertionError(f"only {len(self.received)} webhook deliveries of {count} arrived")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
