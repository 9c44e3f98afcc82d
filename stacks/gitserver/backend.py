"""Serve one git smart-HTTP request by driving `git http-backend` as a CGI program.

`app.py` calls `HttpBackend.serve()` after it has authenticated the user, authorised
the service and resolved the repository. git's own backend speaks every protocol
version and capability the installed git has (protocol v2 for fetch via the
`Git-Protocol` header, partial clone filters, gzip request bodies); the numbers that
chose it over dulwich are in bench/README.md ("Git server").

For a push, the start of the body (the receive-pack command list) is parsed before the
backend runs; once it exits, the commands that now hold are reported to `on_push`
(which queues webhooks) before the last byte of the response is returned, so the push
response is never held up by webhook delivery.

A gzip request body (`Content-Encoding: gzip`, which git uses for fetch negotiation) is
inflated here, bounded by `MAX_INFLATED`, before the backend starts: a body that is not
valid gzip gets 400 and one log line, never a half-started backend or a traceback.
"""

from __future__ import annotations

import contextlib
import io
import logging
import subprocess
import tempfile
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any, cast

from stacks.errors import trim
from stacks.gitserver.limits import MAX_INFLATED
from stacks.gitserver.logsafe import escape
from stacks.gitserver.receive import (
    CommandParser,
    ProtocolError,
    RefCommand,
    accepted,
    changed,
    parse_for_each_ref,
)
from stacks.gitserver.repos import RepoStore, git_environment

log = logging.getLogger("platform.gitserver.backend")

CHUNK = 64 * 1024

StartResponse = Callable[..., Any]
PushListener = Callable[[str, str, list[RefCommand]], None]  # (repo, user, updates)

# Request headers the backend needs, as CGI variables.
_PASSED = ("CONTENT_TYPE", "HTTP_CONTENT_ENCODING", "HTTP_GIT_PROTOCOL", "REMOTE_ADDR")
_GZIP = ("gzip", "x-gzip")
# Response headers that the WSGI server owns.
_HOP_BY_HOP = {"connection", "transfer-encoding", "keep-alive", "status"}


@dataclass(frozen=True)
class GitRequest:
    """What `app.py` resolved: repository name, the path inside it, the user's name."""

    repo: str
    subpath: str
    user: str


class HttpBackend:
    """Runs `git http-backend` for each request against the repositories in `store`."""

    def __init__(self, store: RepoStore, on_push: PushListener, git: str = "git") -> None:
        self.store = store
        self.on_push = on_push
        self.git = git

    def serve(
        self, environ: Mapping[str, Any], start_response: StartResponse, request: GitRequest
    ) -> Iterable[bytes]:
        method = str(environ.get("REQUEST_METHOD", "GET"))
        body: IO[bytes] = environ["wsgi.input"]
        remaining = int(environ.get("CONTENT_LENGTH") or 0) if method == "POST" else 0
        is_push = method == "POST" and request.subpath == "git-receive-pack"
        encoding = str(environ.get("HTTP_CONTENT_ENCODING") or "").strip().lower()
        inflated: IO[bytes] | None = None
        if method == "POST" and encoding in _GZIP:
            try:
                inflated = _inflate(body, remaining, MAX_INFLATED)
            except BadBody as error:
                log.warning(
                    "refused a request body for '%s' from %s: %s",
                    request.repo,
                    escape(str(environ.get("REMOTE_ADDR", "-")), 64),
                    error,
                )
                message = f"{error}\n".encode()
                start_response(
                    "400 Bad Request",
                    [("Content-Type", "text/plain"), ("Content-Length", str(len(message)))],
                )
                return [message]
            body, remaining = inflated, inflated.seek(0, io.SEEK_END)
            inflated.seek(0)

        prefix = b""
        commands: list[RefCommand] | None = None
        before: dict[str, str] | None = None
        if is_push:
            prefix, remaining, commands = _read_commands(body, remaining)
            if commands is None:  # could not parse: fall back to comparing snapshots
                before = self._refs(request.repo)

        env = git_environment(
            {
                "GIT_PROJECT_ROOT": str(self.store.root),
                "GIT_HTTP_EXPORT_ALL": "1",
                "GATEWAY_INTERFACE": "CGI/1.1",
                "REQUEST_METHOD": method,
                "PATH_INFO": f"/{request.repo}.git/{request.subpath}",
                "QUERY_STRING": str(environ.get("QUERY_STRING", "")),
                "REMOTE_USER": request.user,
                "SERVER_PROTOCOL": str(environ.get("SERVER_PROTOCOL", "HTTP/1.1")),
            }
        )
        for key in _PASSED:
            if environ.get(key):
                env[key] = str(environ[key])
        if inflated is not None:  # the backend gets the inflated body
            env.pop("HTTP_CONTENT_ENCODING", None)
        if method == "POST":
            env["CONTENT_LENGTH"] = str(len(prefix) + remaining)

        errors = tempfile.TemporaryFile()  # noqa: SIM115 - closed in the response's finally
        try:
            process = subprocess.Popen(
                [self.git, "http-backend"],
                stdin=subprocess.PIPE if method == "POST" else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=errors,
                env=env,
            )
        except OSError as error:
            errors.close()
            if inflated is not None:
                inflated.close()
            log.error("failed to start git http-backend: %s", error)
            start_response("502 Bad Gateway", [("Content-Type", "text/plain")])
            return iter([b"git backend unavailable\n"])

        feeder = None
        if process.stdin is not None:
            feeder = threading.Thread(
                target=_feed,
                args=(process.stdin, prefix, body, remaining),
                name="gitserver-feed",
                daemon=True,
            )
            feeder.start()
        generator = self._respond(
            process, feeder, errors, start_response, request, commands, before, is_push
        )
        return _Response(generator, process, errors, inflated)

    def _respond(
        self,
        process: subprocess.Popen[bytes],
        feeder: threading.Thread | None,
        errors: IO[bytes],
        start_response: StartResponse,
        request: GitRequest,
        commands: list[RefCommand] | None,
        before: dict[str, str] | None,
        is_push: bool,
    ) -> Iterator[bytes]:
        stdout = cast(io.BufferedReader, process.stdout)
        try:
            status, headers, first = _read_cgi_headers(stdout)
            start_response(status, headers)
            if first:
                yield first
            while chunk := stdout.read1(CHUNK):
                yield chunk
            process.wait()
            if feeder is not None:
                feeder.join()
            if is_push:
                self._report_push(request, commands, before)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            stdout.close()
            if process.returncode not in (0, None):
                errors.seek(0)
                log.warning(
                    "git http-backend for '%s' exited %s: %s",
                    request.repo,
                    process.returncode,
                    trim(errors.read(2000).decode("utf-8", "replace"), 300),
                )
            errors.close()

    def _report_push(
        self,
        request: GitRequest,
        commands: list[RefCommand] | None,
        before: dict[str, str] | None,
    ) -> None:
        try:
            if commands is not None:
                refs = self._refs(request.repo, [c.ref for c in commands])
                updates = accepted(commands, refs)
            else:
                updates = changed(before or {}, self._refs(request.repo))
        except OSError as error:
            log.error("failed to read refs of repository '%s': %s", request.repo, error)
            return
        if updates:
            self.on_push(request.repo, request.user, updates)

    def _refs(self, repo: str, patterns: list[str] | None = None) -> dict[str, str]:
        result = subprocess.run(
            [
                self.git,
                "--git-dir",
                str(self.store.path(repo)),
                "for-each-ref",
                "--format=%(objectname) %(refname)",
                *(patterns or []),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env=git_environment(),
            check=False,
        )
        return parse_for_each_ref(result.stdout)


class _Response:
    """The WSGI iterable: `close()` reaps the backend even if iteration never began."""

    def __init__(
        self,
        body: Iterator[bytes],
        process: subprocess.Popen[bytes],
        errors: IO[bytes],
        inflated: IO[bytes] | None = None,
    ) -> None:
        self._body = body
        self._process = process
        self._errors = errors
        self._inflated = inflated

    def __iter__(self) -> Iterator[bytes]:
        return self._body

    def close(self) -> None:
        self._body.close()  # type: ignore[attr-defined]
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        for stream in (self._process.stdout, self._errors, self._inflated):
            if stream is not None:
                stream.close()


class BadBody(ValueError):
    """The request body cannot be decoded (its message is safe to show the client)."""


def _inflate(body: IO[bytes], length: int, limit: int) -> IO[bytes]:
    """The gzip `body` inflated into a temporary file (memory first); BadBody when it is
    not gzip, is cut short, or inflates to more than `limit` bytes."""
    out = tempfile.SpooledTemporaryFile(max_size=1024 * 1024)  # noqa: SIM115 - returned
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        size = 0
        while length > 0:
            chunk = body.read(min(CHUNK, length))
            if not chunk:
                break
            length -= len(chunk)
            data = inflater.decompress(chunk, limit + 1 - size)
            while True:
                size += len(data)
                if size > limit:
                    raise BadBody(f"the gzip request body inflates to more than {limit} bytes")
                out.write(data)
                if not inflater.unconsumed_tail:
                    break
                data = inflater.decompress(inflater.unconsumed_tail, limit + 1 - size)
        size += len(tail := inflater.flush())
        out.write(tail)
        if not inflater.eof or size > limit:
            raise BadBody("the gzip request body is cut short")
    except zlib.error as error:
        out.close()
        raise BadBody(f"the request body is not valid gzip ({error})") from None
    except BaseException:
        out.close()
        raise
    out.seek(0)
    return cast(IO[bytes], out)


def _read_commands(body: IO[bytes], remaining: int) -> tuple[bytes, int, list[RefCommand] | None]:
    """Read the body up to the end of the command list: (bytes read, left, commands)."""
    parser = CommandParser()
    read = bytearray()
    try:
        while not parser.done and remaining > 0:
            chunk = body.read(min(CHUNK, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            read += chunk
            parser.feed(chunk)
    except ProtocolError as error:
        log.warning("failed to parse push commands, comparing refs instead: %s", error)
        return bytes(read), remaining, None
    return bytes(read), remaining, parser.commands if parser.done else None


def _feed(stdin: IO[bytes], prefix: bytes, body: IO[bytes], remaining: int) -> None:
    """Copy the request body into the backend's stdin (a thread: never deadlocks)."""
    try:
        if prefix:
            stdin.write(prefix)
        while remaining > 0:
            chunk = body.read(min(CHUNK, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            stdin.write(chunk)
    except (BrokenPipeError, ValueError):
        pass  # the backend stopped reading (it answers with an error of its own)
    finally:
        with contextlib.suppress(BrokenPipeError, ValueError):
            stdin.close()


def _read_cgi_headers(stdout: io.BufferedReader) -> tuple[str, list[tuple[str, str]], bytes]:
    """Split the CGI output into (status, headers, first body bytes)."""
    data = b""
    while True:
        for separator in (b"\r\n\r\n", b"\n\n"):
            head, found, rest = data.partition(separator)
            if found:
                return (*_parse_cgi_head(head), rest)
        chunk = stdout.read1(CHUNK)
        if not chunk:
            return "502 Bad Gateway", [("Content-Type", "text/plain")], b"git backend failed\n"
        data += chunk
        if len(data) > 64 * 1024:
            return "502 Bad Gateway", [("Content-Type", "text/plain")], b"bad backend reply\n"


def _parse_cgi_head(head: bytes) -> tuple[str, list[tuple[str, str]]]:
    status = "200 OK"
    headers = []
    for raw in head.decode("latin-1").replace("\r\n", "\n").split("\n"):
        name, sep, value = raw.partition(":")
        if not sep:
            continue
        name, value = name.strip(), value.strip()
        if name.lower() == "status":
            status = value
        elif name.lower() not in _HOP_BY_HOP:
            headers.append((name, value))
    return status, headers
