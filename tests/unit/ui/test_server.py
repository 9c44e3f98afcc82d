"""The dashboard's HTTP rules against the real server on an ephemeral port: the token,
the Host header (DNS rebinding), CSRF on POST, 404, bounded requests, the event stream.

The routes are a small stand-in (the rules are the server's, before any route runs);
bootstrap/ui/site.py's real routes are exercised by tests/e2e/test_ui.py.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator

import pytest

from bootstrap.ui import server as ui_server
from bootstrap.ui.server import Request, Response, UiServer


class _Stream:
    def __init__(self) -> None:
        self.sent = False
        self.closed = threading.Event()

    def next(self, timeout: float) -> str | None:
        if not self.sent:
            self.sent = True
            return '{"key": "platform-system/demo"}'
        return None if self.closed.wait(timeout) else ""

    def close(self) -> None:
        self.closed.set()


class _Routes:
    def __init__(self) -> None:
        self.forms: list[dict[str, str]] = []
        self.streams: list[_Stream] = []

    def handle(self, request: Request, csrf: str) -> Response | None:
        if request.method == "POST" and request.path == "/act":
            self.forms.append(request.form)
            return Response(303, b"", headers=(("Location", "/"),))
        if request.path == "/":
            return Response(200, f"<form><input name=csrf value={csrf}></form>".encode())
        return None

    def stream(self, request: Request) -> _Stream | None:
        if request.path != "/events":
            return None
        stream = _Stream()
        self.streams.append(stream)
        return stream


@pytest.fixture
def routes() -> _Routes:
    return _Routes()


@pytest.fixture
def ui(routes: _Routes, monkeypatch: pytest.MonkeyPatch) -> Iterator[UiServer]:
    monkeypatch.setattr(ui_server, "REQUEST_DEADLINE", 1.0)
    server = UiServer(routes).start()
    yield server
    for stream in routes.streams:
        stream.close()
    server.stop()


def ask(
    ui: UiServer,
    path: str,
    method: str = "GET",
    host: str | None = None,
    cookie: bool = True,
    body: str | None = None,
    headers: dict[str, str] | None = None,
) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", ui.port, timeout=5)
    sent = {"Host": host or f"127.0.0.1:{ui.port}", **(headers or {})}
    if cookie:
        sent["Cookie"] = f"{ui.cookie}={ui.token}"
    if body is not None:
        sent["Content-Type"] = "application/x-www-form-urlencoded"
    connection.request(method, path, body=body, headers=sent, encode_chunked=False)
    response = connection.getresponse()
    response.read_body = response.read()  # type: ignore[attr-defined]
    connection.close()
    return response


def test_binds_loopback_only(ui: UiServer) -> None:
    assert ui.httpd.server_address[0] == "127.0.0.1"
    assert ui.url == f"http://127.0.0.1:{ui.port}/?token={ui.token}"


def test_without_the_token_403(ui: UiServer) -> None:
    response = ask(ui, "/", cookie=False)
    assert response.status == 403
    assert b"access token" in response.read_body  # type: ignore[attr-defined]
    assert b"<script" not in response.read_body  # type: ignore[attr-defined]
    assert ask(ui, "/?token=wrong", cookie=False).status == 403
    wrong_cookie = ask(ui, "/", cookie=False, headers={"Cookie": f"{ui.cookie}=wrong"})
    assert wrong_cookie.status == 403
    # A cookie of another dashboard (another port) does not open this one.
    other = ask(ui, "/", cookie=False, headers={"Cookie": f"platform_ui_1={ui.token}"})
    assert other.status == 403


def test_token_in_url_becomes_a_strict_httponly_cookie(ui: UiServer) -> None:
    response = ask(ui, f"/apps?token={ui.token}&x=1", cookie=False)
    assert response.status == 303
    cookie = response.getheader("Set-Cookie") or ""
    assert cookie.startswith(f"{ui.cookie}={ui.token};")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    location = response.getheader("Location") or ""
    assert location == "/apps?x=1" and ui.token not in location
    assert ask(ui, "/").status == 200


def test_foreign_host_refused(ui: UiServer) -> None:
    for host in (
        f"evil.example:{ui.port}",
        "127.0.0.1",
        f"127.0.0.1:{ui.port + 1}",
        f"127.0.0.1.nip.io:{ui.port}",
    ):
        response = ask(ui, "/", host=host)
        assert response.status == 403, host
        assert b"answers only to" in response.read_body  # type: ignore[attr-defined]
    assert ask(ui, "/", host=f"localhost:{ui.port}").status == 200


def test_post_needs_the_csrf_token(ui: UiServer, routes: _Routes) -> None:
    assert ask(ui, "/act", "POST", body="").status == 403
    assert ask(ui, "/act", "POST", body="csrf=wrong").status == 403
    assert ask(ui, "/act", "POST", body="csrf=" + ui.csrf, cookie=False).status == 403
    assert routes.forms == []
    foreign = ask(
        ui,
        "/act",
        "POST",
        body="csrf=" + urllib.parse.quote(ui.csrf),
        headers={"Origin": "http://evil.example"},
    )
    assert foreign.status == 403
    assert routes.forms == []
    good = ask(
        ui,
        "/act",
        "POST",
        body="csrf=" + urllib.parse.quote(ui.csrf) + "&a=b",
        headers={"Origin": f"http://127.0.0.1:{ui.port}"},
    )
    assert good.status == 303
    assert routes.forms == [{"a": "b"}]


def test_post_body_is_bounded(ui: UiServer, routes: _Routes) -> None:
    big = "csrf=" + ui.csrf + "&pad=" + "x" * (ui_server.MAX_BODY + 1)
    assert ask(ui, "/act", "POST", body=big).status == 400
    assert routes.forms == []


def test_unknown_path_is_a_plain_404(ui: UiServer) -> None:
    response = ask(ui, "/nowhere/../etc/passwd")
    assert response.status == 404
    body = response.read_body  # type: ignore[attr-defined]
    assert b"404 Not Found" in body and b"<script" not in body
    assert ask(ui, "/nothing", "POST", body="csrf=" + ui.csrf).status == 404


def test_every_answer_carries_a_strict_content_security_policy(ui: UiServer) -> None:
    for response in (ask(ui, "/"), ask(ui, "/", cookie=False), ask(ui, "/x")):
        policy = response.getheader("Content-Security-Policy") or ""
        assert "default-src 'none'" in policy and "script-src 'self'" in policy
        assert response.getheader("X-Frame-Options") == "DENY"


def test_a_trickling_peer_is_cut_off(ui: UiServer) -> None:
    with socket.create_connection(("127.0.0.1", ui.port), timeout=5) as peer:
        peer.sendall(b"GET / HTTP/1.1\r\n")
        started = time.monotonic()
        for _ in range(4):
            time.sleep(0.4)
            try:
                peer.sendall(b"X-Slow: 1\r\n")
            except OSError:
                break
        assert peer.recv(100) == b""  # closed by the deadline, no answer
        assert time.monotonic() - started < 4


def test_event_stream_outlives_the_header_deadline(ui: UiServer) -> None:
    with socket.create_connection(("127.0.0.1", ui.port), timeout=5) as peer:
        peer.sendall(
            f"GET /events HTTP/1.1\r\nHost: 127.0.0.1:{ui.port}\r\n"
            f"Cookie: {ui.cookie}={ui.token}\r\n\r\n".encode()
        )
        time.sleep(1.8)  # past the 1 s request deadline of this fixture
        data = b""
        while b"data: " not in data:
            chunk = peer.recv(4096)
            assert chunk, data
            data += chunk
    assert b"text/event-stream" in data
    assert b'data: {"key": "platform-system/demo"}' in data


def test_event_stream_needs_the_token(ui: UiServer, routes: _Routes) -> None:
    assert ask(ui, "/events", cookie=False).status == 403
    assert routes.streams == []


def test_a_port_in_use_is_an_oserror_not_a_crash(routes: _Routes) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError):
            UiServer(routes, taken.getsockname()[1])
