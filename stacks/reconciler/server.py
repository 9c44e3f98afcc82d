"""The reconciler's HTTP endpoint: POST /webhook, GET /metrics, GET /healthz.

/webhook takes the git server's push notification, a JSON body
`{"repo": ..., "ref": "refs/heads/main", "before": sha, "after": sha}` signed with
HMAC-SHA256 over the exact body bytes, sent as `X-Platform-Signature: sha256=<hex>`.
A bad or missing signature is refused (401) before the body is parsed; without a
configured secret every webhook is refused (403); the secret is read per request, so a
Secret mounted (or rotated) after start takes effect without a restart. A replica that is not the leader
answers 503 so the sender knows nothing was queued (the interval still catches up).

Called by program.py; the push handler is the controller's `on_push`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Platform-Signature"
MAX_BODY = 64 * 1024

PushHandler = Callable[[str, str, str], list[Any]]


def sign(secret: bytes, body: bytes) -> str:
    """The header value a sender puts on `body`."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, header: str | None) -> bool:
    if not secret or not header:
        return False
    return hmac.compare_digest(sign(secret, body), header.strip())


class Server:
    def __init__(
        self,
        host: str,
        port: int,
        secret: Callable[[], bytes],
        metrics: Callable[[], str],
        push: Callable[[], PushHandler | None],
    ) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "platform-reconciler"

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("%s %s", self.address_string(), format % args)

            def _send(
                self, code: int, body: str, content_type: str = "text/plain; charset=utf-8"
            ) -> None:
                data = body.encode()
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path in ("/healthz", "/readyz"):
                    self._send(200, "ok\n")
                elif self.path == "/metrics":
                    self._send(200, metrics(), "text/plain; version=0.0.4; charset=utf-8")
                else:
                    self._send(404, "not found\n")

            def do_POST(self) -> None:
                if self.path != "/webhook":
                    self._send(404, "not found\n")
                    return
                length = int(self.headers.get("Content-Length") or 0)
                if length <= 0 or length > MAX_BODY:
                    self._send(400, "a JSON body of at most 64 KiB is required\n")
                    return
                body = self.rfile.read(length)
                key = outer.secret()
                if not key:
                    self._send(403, "webhooks are disabled: the reconciler has no webhook secret\n")
                    return
                if not verify(key, body, self.headers.get(SIGNATURE_HEADER)):
                    log.warning(
                        "refused a webhook from %s: bad or missing signature", self.address_string()
                    )
                    self._send(401, f"bad or missing {SIGNATURE_HEADER}\n")
                    return
                try:
                    event = json.loads(body)
                    repo, ref, after = (
                        str(event["repo"]),
                        str(event.get("ref", "")),
                        str(event.get("after", "")),
                    )
                except (ValueError, KeyError, TypeError):
                    self._send(400, 'expected {"repo", "ref", "before", "after"}\n')
                    return
                handler = push()
                if handler is None:
                    self._send(503, "not the leader\n")
                    return
                queued = handler(repo, ref, after)
                self._send(
                    202, json.dumps({"queued": [str(k) for k in queued]}) + "\n", "application/json"
                )

        self.secret = secret
        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="http", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
