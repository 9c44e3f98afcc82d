"""The reconciler's HTTP endpoint: POST /webhook, GET /metrics, GET /healthz.

/webhook takes the git server's push notification, a JSON body
`{"repo": ..., "ref": "refs/heads/main", "before": sha, "after": sha}` signed with
HMAC-SHA256 over the exact body bytes, sent as `X-Platform-Signature: sha256=<hex>`.
A bad or missing signature is refused (401) before the body is parsed; without a
configured secret every webhook is refused (403); the secret is read per request, so a
Secret mounted (or rotated) after start takes effect without a restart. A replica that is not the leader
answers 503 so the sender knows nothing was queued (the interval still catches up).

Anyone who can reach the port can send anything, so every request is bounded before a
signature is checked: a whole request must arrive within REQUEST_DEADLINE (a watchdog
closes the socket, so a peer that sends one byte a second is cut off too), at most
MAX_CONNECTIONS are served at once (more get 503 at once, without a thread), the body
is at most MAX_BODY, and malformed headers get 400/401 instead of a traceback. A
replayed signed payload only queues a fetch: the reconciler resolves the branch itself
and never applies the `after` of a payload, so an old push cannot roll anything back.

Called by program.py; the push handler is the controller's `on_push`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

from stacks.signing import SIGNATURE_HEADER, verify

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
REQUEST_DEADLINE = 10.0  # seconds for a whole request, headers and body
MAX_CONNECTIONS = 32  # requests served at once; each holds a thread

PushHandler = Callable[[str, str, str], list[Any]]


class _BoundedServer(ThreadingHTTPServer):
    """ThreadingHTTPServer with a cap on concurrent requests and quiet disconnects."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: Any) -> None:
        super().__init__(address, handler)
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        # One watchdog for every request (a timer per request would double the threads).
        self._deadlines: dict[Any, float] = {}
        self._guard = threading.Lock()
        threading.Thread(target=self._reap, name="http-deadline", daemon=True).start()

    def watch(self, connection: Any) -> None:
        with self._guard:
            self._deadlines[connection] = time.monotonic() + REQUEST_DEADLINE

    def unwatch(self, connection: Any) -> None:
        with self._guard:
            self._deadlines.pop(connection, None)

    def _reap(self) -> None:
        while True:
            time.sleep(0.5)
            now = time.monotonic()
            with self._guard:
                expired = [c for c, when in self._deadlines.items() if when <= now]
                for connection in expired:
                    del self._deadlines[connection]
            for connection in expired:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            try:
                request.settimeout(1.0)
                request.sendall(
                    b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\n"
                    b"Retry-After: 1\r\nConnection: close\r\n\r\n"
                )
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A peer that disconnects or stalls is not a bug in the reconciler: one line,
        # not a traceback on stderr.
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            log.debug("connection from %s ended: %s", client_address, error)
        else:
            log.exception("failed to handle a request from %s", client_address)


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
            timeout = REQUEST_DEADLINE  # per socket operation; the watchdog bounds the sum

            def setup(self) -> None:
                super().setup()
                cast(_BoundedServer, self.server).watch(self.connection)

            def finish(self) -> None:
                cast(_BoundedServer, self.server).unwatch(self.connection)
                with contextlib.suppress(OSError):
                    super().finish()

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
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                except ValueError:
                    length = -1
                if length <= 0 or length > MAX_BODY:
                    self._send(400, "a JSON body of at most 64 KiB is required\n")
                    return
                body = self.rfile.read(length)
                if len(body) < length:
                    return  # the peer went away mid-body (or the watchdog cut it off)
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
                except (ValueError, KeyError, TypeError, AttributeError):
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
        self.httpd = _BoundedServer((host, port), Handler)
        self.port = int(self.httpd.server_address[1])
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="http", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
