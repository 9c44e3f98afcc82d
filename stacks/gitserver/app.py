"""The git server's WSGI application: routing, authorisation, the repo API, access log.

`server.py` serves `AccessLog(GitServerApp(...))` with waitress. Routes:

    GET  /healthz, /readyz                            no auth; 200 when the data dir is there
    GET  /metrics                                     no auth; Prometheus text (counts only)
    GET  /api/repos                                   any user; {"repos": [names it may reach]}
    POST /api/repos {"name": "gitops"}                unrestricted write users; 201 created, 200 existed
    DELETE /api/repos/<name>                          unrestricted write users; 204, 404
    GET  /<repo>[.git]/info/refs?service=git-upload-pack    clone/fetch (any user)
    POST /<repo>[.git]/git-upload-pack
    GET  /<repo>[.git]/info/refs?service=git-receive-pack   push (write users; else 403)
    POST /<repo>[.git]/git-receive-pack

A repository name is one segment or two (`tenants/alice`). A user limited to some
repositories (auth.py `repos`, e.g. a workshop tenant) gets 403 for any other, existing
or not, so names are not disclosed either.

Missing or wrong credentials get 401 with `WWW-Authenticate: Basic`; a client that
failed too many logins gets 429 with Retry-After (throttle.py). A write user's
push to a missing repository creates it when auto-create is on. Accepted ref updates
become `PushEvent`s for the webhook dispatcher. The access log has one line per request
with the user name, never the Authorization header or a query string other than
`service`; client-controlled fields (path, user agent) have control characters escaped
(logsafe.py), so no request can forge a line.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from stacks.errors import PlatformError
from stacks.gitserver.auth import User
from stacks.gitserver.backend import GitRequest, HttpBackend, StartResponse
from stacks.gitserver.logsafe import escape
from stacks.gitserver.receive import RefCommand
from stacks.gitserver.repos import InvalidRepoName, RepoStore, normalise_name
from stacks.gitserver.throttle import Gatekeeper
from stacks.gitserver.webhooks import PushEvent

log = logging.getLogger("platform.gitserver.app")
access_log = logging.getLogger("platform.gitserver.access")

WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
PushHandler = Callable[[str, str, list[RefCommand]], None]

REALM = 'Basic realm="platform git", charset="UTF-8"'
MAX_API_BODY = 64 * 1024

_GIT_PATH = re.compile(
    r"^/(?P<repo>[^/]+(?:/[^/]+)?)/(?P<sub>info/refs|git-upload-pack|git-receive-pack|HEAD"
    r"|objects/info/(?:packs|alternates|http-alternates)"
    r"|objects/[0-9a-f]{2}/[0-9a-f]{38,62}"
    r"|objects/pack/pack-[0-9a-f]{40,64}\.(?:pack|idx))$"
)
UPLOAD = "git-upload-pack"
RECEIVE = "git-receive-pack"


class GitServerApp:
    """Routes a request to health, the repo API or the git backend, after auth checks."""

    def __init__(
        self,
        store: RepoStore,
        gate: Gatekeeper,
        backend: HttpBackend,
        auto_create: bool = True,
        metrics: Callable[[], bytes] | None = None,
    ) -> None:
        self.store = store
        self.gate = gate
        self.backend = backend
        self.auto_create = auto_create
        self.metrics = metrics

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO") or "/")
        method = str(environ.get("REQUEST_METHOD", "GET"))
        if path == "/metrics" and self.metrics is not None:
            body = self.metrics()
            start_response(
                "200 OK",
                [
                    ("Content-Type", "text/plain; version=0.0.4; charset=utf-8"),
                    ("Content-Length", str(len(body))),
                ],
            )
            return [body]
        if path in ("/healthz", "/readyz"):
            if self.store.root.is_dir():
                return _text(start_response, "200 OK", "ok\n")
            return _text(start_response, "503 Service Unavailable", "data directory missing\n")

        verdict = self.gate.check(
            environ.get("HTTP_AUTHORIZATION"), str(environ.get("REMOTE_ADDR") or "-")
        )
        if verdict.retry_after > 0:
            return _text(
                start_response,
                "429 Too Many Requests",
                "too many failed logins from this address; try again later\n",
                [("Retry-After", str(math.ceil(verdict.retry_after)))],
            )
        user = verdict.user
        if user is None:
            return _text(
                start_response,
                "401 Unauthorized",
                "authentication required\n",
                [("WWW-Authenticate", REALM)],
            )
        environ["REMOTE_USER"] = user.name

        try:
            if path.rstrip("/") == "/api/repos":
                return self._api_repos(environ, start_response, method, user)
            if path.startswith("/api/repos/"):
                return self._api_delete(start_response, method, user, path[len("/api/repos/") :])
            match = _GIT_PATH.match(path)
            if match is None:
                return _text(start_response, "404 Not Found", "not found\n")
            return self._git(environ, start_response, method, user, match)
        except InvalidRepoName as error:
            return _text(start_response, "400 Bad Request", f"{error}\n")
        except PlatformError as error:
            log.error("failed to serve %s %s: %s", escape(method, 20), escape(path), error)
            return _text(start_response, "503 Service Unavailable", f"{error}\n")

    def _git(
        self,
        environ: dict[str, Any],
        start_response: StartResponse,
        method: str,
        user: User,
        match: re.Match[str],
    ) -> Iterable[bytes]:
        repo = normalise_name(match["repo"])
        sub = match["sub"]
        service = _service(sub, str(environ.get("QUERY_STRING", "")))
        if sub in (UPLOAD, RECEIVE):
            if method != "POST":
                return _text(start_response, "405 Method Not Allowed", "use POST\n")
        elif method not in ("GET", "HEAD"):
            return _text(start_response, "405 Method Not Allowed", "use GET\n")
        if not user.may_access(repo):
            return _text(
                start_response, "403 Forbidden", f"user '{user.name}' may not access '{repo}'\n"
            )
        if service == RECEIVE and not user.can_write:
            return _text(start_response, "403 Forbidden", f"user '{user.name}' may not push\n")
        if not self.store.exists(repo):
            if not (service == RECEIVE and self.auto_create and sub == "info/refs"):
                return _text(start_response, "404 Not Found", f"no repository '{repo}'\n")
            self.store.create(repo)
        return self.backend.serve(
            environ, start_response, GitRequest(repo=repo, subpath=sub, user=user.name)
        )

    def _api_repos(
        self, environ: dict[str, Any], start_response: StartResponse, method: str, user: User
    ) -> Iterable[bytes]:
        if method == "GET":
            names = [n for n in self.store.names() if user.may_access(n)]
            return _json(start_response, "200 OK", {"repos": names})
        if method != "POST":
            return _text(start_response, "405 Method Not Allowed", "use GET or POST\n")
        if not user.can_write or not user.unrestricted:
            return _text(
                start_response, "403 Forbidden", f"user '{user.name}' may not create repos\n"
            )
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            raw = environ["wsgi.input"].read(min(length, MAX_API_BODY)) if length > 0 else b""
            payload = json.loads(raw or b"{}")
            name = payload.get("name") if isinstance(payload, dict) else None
        except (ValueError, UnicodeDecodeError):
            return _text(start_response, "400 Bad Request", "body must be JSON\n")
        if not isinstance(name, str):
            return _text(start_response, "400 Bad Request", 'body must be {"name": "..."}\n')
        name = normalise_name(name)
        created = self.store.create(name)
        return _json(
            start_response,
            "201 Created" if created else "200 OK",
            {"name": name, "created": created, "path": f"/{name}.git"},
        )

    def _api_delete(
        self, start_response: StartResponse, method: str, user: User, raw: str
    ) -> Iterable[bytes]:
        if method != "DELETE":
            return _text(start_response, "405 Method Not Allowed", "use DELETE\n")
        if not user.can_write or not user.unrestricted:
            return _text(
                start_response, "403 Forbidden", f"user '{user.name}' may not delete repos\n"
            )
        name = normalise_name(urllib.parse.unquote(raw).rstrip("/"))
        if not self.store.delete(name):
            return _text(start_response, "404 Not Found", f"no repository '{name}'\n")
        start_response("204 No Content", [("Content-Length", "0")])
        return [b""]


def _service(sub: str, query: str) -> str | None:
    if sub == "info/refs":
        values = urllib.parse.parse_qs(query).get("service", [])
        return values[0] if values and values[0] in (UPLOAD, RECEIVE) else None
    if sub in (UPLOAD, RECEIVE):
        return sub
    return None


def _text(
    start_response: StartResponse,
    status: str,
    text: str,
    extra: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    body = text.encode("utf-8")
    headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
    start_response(status, headers + (extra or []))
    return [body]


def _json(start_response: StartResponse, status: str, payload: Mapping[str, Any]) -> list[bytes]:
    body = json.dumps(payload).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


def push_events(publish: Callable[[PushEvent], None]) -> PushHandler:
    """A push handler that logs each accepted update and publishes it as a PushEvent."""

    def handle(repo: str, user: str, updates: list[RefCommand]) -> None:
        for update in updates:
            log.info(
                "push to '%s' by %s: %s %s..%s",
                repo,
                user,
                update.ref,
                update.old[:7],
                update.new[:7],
            )
            publish(PushEvent(repo=repo, ref=update.ref, before=update.old, after=update.new))

    return handle


class AccessLog:
    """WSGI middleware: one log line per request, and a count of requests in flight."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._in_flight = 0
        self.requests = 0

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        started = time.monotonic()
        status: list[str] = ["-"]

        def recording_start_response(
            code: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            status[0] = code.split(" ", 1)[0]
            return start_response(code, headers, exc_info)

        with self._lock:
            self._in_flight += 1
        try:
            body = self.app(environ, recording_start_response)
        except BaseException:
            self._finish(environ, "500", 0, started)
            raise
        return _Counted(body, lambda sent: self._finish(environ, status[0], sent, started))

    def _finish(self, environ: Mapping[str, Any], status: str, sent: int, started: float) -> None:
        with self._lock:
            self._in_flight -= 1
            self.requests += 1
        query = urllib.parse.parse_qs(str(environ.get("QUERY_STRING", "")))
        service = query.get("service", [""])[0]
        # Every field a client chooses is escaped: a decoded %0d%0a in the path would
        # otherwise end this line and start a forged one.
        path = escape(str(environ.get("PATH_INFO", "")), 200).replace('"', '\\"')
        if service in (UPLOAD, RECEIVE):
            path += f"?service={service}"
        access_log.info(
            '%s %s "%s %s" %s %d %.0fms "%s"',
            escape(str(environ.get("REMOTE_ADDR", "-")), 64),
            escape(str(environ.get("REMOTE_USER") or "-"), 64),
            escape(str(environ.get("REQUEST_METHOD", "-")), 20),
            path,
            status,
            sent,
            (time.monotonic() - started) * 1000,
            escape(str(environ.get("HTTP_USER_AGENT", "-")), 120).replace('"', '\\"'),
        )


class _Counted:
    """Wraps a WSGI body: counts bytes, calls `done(sent)` exactly once on close."""

    def __init__(self, body: Iterable[bytes], done: Callable[[int], None]) -> None:
        self._body = body
        self._done: Callable[[int], None] | None = done
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._body:
            self.sent += len(chunk)
            yield chunk

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            if self._done is not None:
                done, self._done = self._done, None
                done(self.sent)
