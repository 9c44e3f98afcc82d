"""The dashboard's HTTP server: who may ask, how much, and how long; no page knows of it.

Every request passes these rules before a route sees it:

- the socket is bound to 127.0.0.1 only (another machine cannot connect at all);
- the Host header must be `127.0.0.1:PORT` or `localhost:PORT`: a page on another site
  whose name was made to resolve to 127.0.0.1 (DNS rebinding) sends its own name and
  is refused (403);
- the access token, printed once by `platform ui` in the URL (as Jupyter does), must come
  with the request: in the URL (`?token=`, answered with a cookie and a redirect that
  drops it from the address bar) or in that cookie (HttpOnly, SameSite=Strict, named
  after the port so two dashboards do not overwrite each other's); else 403;
- a POST also needs the CSRF token of the page's form, and an Origin, when the browser
  sends one, of this server; else 403;
- the request line and headers must arrive within REQUEST_DEADLINE (a watchdog closes
  the socket of a peer that trickles), a body is at most MAX_BODY, at most
  MAX_CONNECTIONS requests are served at once and at most MAX_STREAMS event streams are
  open (more get 503 at once);
- an unknown path is a plain 404 page.

Responses carry a Content-Security-Policy that allows only this server's own script and
stylesheet, so nothing is fetched from the network. Routes are a `Routes` object
(bootstrap/ui/site.py); the unit tests give the server a small one of their own.

Called by bootstrap/ui/site.py's `serve` (from `platform ui`) and by tests/unit/ui.
"""

from __future__ import annotations

import contextlib
import hmac
import http.cookies
import logging
import secrets
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Protocol, cast

from stacks.program import BoundedHTTPServer

log = logging.getLogger(__name__)

BIND = "127.0.0.1"
MAX_BODY = 8 * 1024  # a form with a CSRF token; nothing larger is ever posted
REQUEST_DEADLINE = 10.0  # seconds for the request line, headers and body
MAX_CONNECTIONS = 32  # requests served at once (each holds a thread)
MAX_STREAMS = 16  # open event streams (browser tabs) at once
KEEPALIVE = 15.0  # seconds between comments on an idle event stream
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    # same-origin, not no-referrer: with no-referrer a browser sends `Origin: null` on the
    # page's own POST, which the Origin check would refuse.
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/html; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass
class Request:
    """What a route sees: the path, the query and (POST) the form; never the token."""

    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str] = field(default_factory=dict)


class Stream(Protocol):
    """An event stream: `next(timeout)` gives the next event's text, '' after a quiet
    `timeout`, None when the stream is over (the server is stopping)."""

    def next(self, timeout: float) -> str | None: ...

    def close(self) -> None: ...


class Routes(Protocol):
    def handle(self, request: Request, csrf: str) -> Response | None:
        """The answer for a GET or POST, None for an unknown path (404)."""

    def stream(self, request: Request) -> Stream | None:
        """The event stream at this path, None when it is not one."""


def plain_page(status: int, title: str, text: str) -> Response:
    """A page with no script and no style: the answer to a refused or unknown request."""
    import html

    body = (
        f"<!doctype html><html lang=en><meta charset=utf-8><title>{status} {html.escape(title)}"
        f"</title><h1>{status} {html.escape(title)}</h1><p>{html.escape(text)}</p></html>\n"
    )
    return Response(status, body.encode())


class _BoundedServer(BoundedHTTPServer):
    """The components' bounded server (stacks/program.py: a cap on requests, a deadline on
    each, quiet disconnects) with a cap on event streams, which outlive the deadline."""

    allow_reuse_address = True
    max_connections = MAX_CONNECTIONS
    request_deadline = REQUEST_DEADLINE

    def __init__(self, address: tuple[str, int], handler: Any) -> None:
        super().__init__(address, handler)
        self.streams = threading.BoundedSemaphore(MAX_STREAMS)


class UiServer:
    """The server on 127.0.0.1:`port` (0: any free port) serving `routes`."""

    def __init__(self, routes: Routes, port: int = 0) -> None:
        self.routes = routes
        self.token = secrets.token_urlsafe(24)
        self.csrf = secrets.token_urlsafe(24)
        self.httpd = _BoundedServer((BIND, port), _handler_for(self))
        self.port = int(self.httpd.server_address[1])
        self.cookie = f"platform_ui_{self.port}"
        self.hosts = {f"127.0.0.1:{self.port}", f"localhost:{self.port}"}
        self.origins = {f"http://{host}" for host in self.hosts}
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, name="ui-http", daemon=True
        )

    @property
    def url(self) -> str:
        """The address with the access token: printed once, for the person who started it."""
        return f"http://127.0.0.1:{self.port}/?token={self.token}"

    def start(self) -> UiServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def token_ok(self, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(str(given).encode(), self.token.encode())

    def csrf_ok(self, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(str(given).encode(), self.csrf.encode())


def _handler_for(ui: UiServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "platform-ui"
        sys_version = ""
        timeout = REQUEST_DEADLINE  # per socket operation; the watchdog bounds the sum

        def setup(self) -> None:
            super().setup()
            cast(_BoundedServer, self.server).watch(self.connection)

        def finish(self) -> None:
            cast(_BoundedServer, self.server).unwatch(self.connection)
            with contextlib.suppress(OSError):
                super().finish()

        def log_message(self, format: str, *args: Any) -> None:
            # The request line may hold the token (?token=): it is never logged.
            log.debug("%s %s", self.command, urllib.parse.urlsplit(self.path).path)

        def _send(self, response: Response) -> None:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            for name, value in SECURITY_HEADERS.items():
                self.send_header(name, value)
            for name, value in response.headers:
                self.send_header(name, value)
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)

        def _refuse(self, status: int, title: str, text: str) -> None:
            self._send(plain_page(status, title, text))

        def _cookie_token(self) -> str | None:
            raw = self.headers.get("Cookie")
            if not raw:
                return None
            jar = http.cookies.SimpleCookie()
            with contextlib.suppress(http.cookies.CookieError):
                jar.load(raw)
            morsel = jar.get(ui.cookie)
            return morsel.value if morsel is not None else None

        def _admitted(self) -> tuple[Request, bool] | None:
            """The request, and whether it carried the token in its URL; None after a
            refusal has been sent."""
            if self.headers.get("Host", "") not in ui.hosts:
                self._refuse(
                    403,
                    "Forbidden",
                    "This dashboard answers only to 127.0.0.1 and localhost on its own port.",
                )
                return None
            parts = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(parts.query, max_num_fields=20))
            in_url = query.pop("token", None)
            if not (ui.token_ok(in_url) or ui.token_ok(self._cookie_token())):
                self._refuse(
                    403,
                    "Forbidden",
                    "A valid access token is needed: open the address `platform ui` printed.",
                )
                return None
            return Request(self.command, parts.path or "/", query), in_url is not None

        def do_HEAD(self) -> None:
            self.do_GET()

        def do_GET(self) -> None:
            admitted = self._admitted()
            if admitted is None:
                return
            request, token_in_url = admitted
            if token_in_url:
                # The token becomes a cookie, and the address bar (and history) loses it.
                location = request.path + (
                    "?" + urllib.parse.urlencode(request.query) if request.query else ""
                )
                cookie = f"{ui.cookie}={ui.token}; HttpOnly; SameSite=Strict; Path=/"
                self._send(
                    Response(
                        303,
                        b"",
                        "text/plain; charset=utf-8",
                        (("Location", location), ("Set-Cookie", cookie)),
                    )
                )
                return
            stream = ui.routes.stream(request)
            if stream is not None:
                self._stream(stream)
                return
            response = ui.routes.handle(request, ui.csrf)
            if response is None:
                response = plain_page(404, "Not Found", f"There is no page at {request.path}.")
            self._send(response)

        def do_POST(self) -> None:
            admitted = self._admitted()
            if admitted is None:
                return
            request, _ = admitted
            origin = self.headers.get("Origin")
            if origin is not None and origin not in ui.origins:
                self._refuse(403, "Forbidden", "A form from another site was refused.")
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if length < 0 or length > MAX_BODY:
                self._refuse(400, "Bad Request", "A form of at most 8 KiB is expected.")
                return
            body = self.rfile.read(length) if length else b""
            if len(body) < length:
                return  # the peer went away mid-body (or the watchdog cut it off)
            try:
                form = dict(
                    urllib.parse.parse_qsl(
                        body.decode("utf-8"), max_num_fields=20, keep_blank_values=True
                    )
                )
            except (UnicodeDecodeError, ValueError):
                self._refuse(400, "Bad Request", "The form could not be read.")
                return
            if not ui.csrf_ok(form.pop("csrf", None)):
                self._refuse(
                    403, "Forbidden", "The form's CSRF token is missing or wrong: reload the page."
                )
                return
            request.form = form
            response = ui.routes.handle(request, ui.csrf)
            if response is None:
                response = plain_page(404, "Not Found", f"There is no action at {request.path}.")
            self._send(response)

        def _stream(self, stream: Stream) -> None:
            server = cast(_BoundedServer, self.server)
            if not server.streams.acquire(blocking=False):
                stream.close()
                self._refuse(503, "Busy", "Too many open dashboards: close a tab.")
                return
            try:
                # The headers are in: from here the stream lasts as long as the tab.
                server.unwatch(self.connection)
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream; charset=utf-8")
                for name, value in SECURITY_HEADERS.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(b"retry: 1000\n\n")
                self.wfile.flush()
                for chunk in _events(stream):
                    self.wfile.write(chunk)
                    self.wfile.flush()
            except OSError:
                pass  # the tab was closed
            finally:
                stream.close()
                server.streams.release()

    return Handler


def _events(stream: Stream) -> Iterator[bytes]:
    while True:
        text = stream.next(KEEPALIVE)
        if text is None:
            return
        if not text:
            yield b": keepalive\n\n"
            continue
        yield "".join(f"data: {line}\n" for line in text.splitlines()).encode() + b"\n"
