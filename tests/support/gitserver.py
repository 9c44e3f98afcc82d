"""A real git server process for tests, and a webhook receiver to catch its pushes.

`GitServer` runs `platform run gitserver` (the project's own server, as in the cluster)
with the one component launcher (tests/support/components.py), so the leak check
covers it and it is started once /readyz answers, like every component. It has
two users: `admin` (read-write) and `reader` (read-only). `git()` runs the git CLI with
the credentials in an `http.extraHeader`, and `git_env()` gives the same to GitPython
through GIT_CONFIG_* variables, so no password is ever part of a URL the server sees or
logs. Used by the fixtures `git_server` and `git_server_factory` in tests/conftest.py
(the git server's own tests, the reconciler's, the e2e).

`WebhookReceiver` is a small HTTP server in the test process that records each delivery
(body, headers, arrival time) and can be stopped and started again on the same port.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.support import processes
from tests.support.components import launch

ADMIN = "admin"
READER = "reader"


def basic_header(user: str, password: str) -> str:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return f"Authorization: Basic {token}"


@dataclass
class GitServer:
    """One git server process with its own data directory, users and log file."""

    workdir: Path
    webhook_urls: Sequence[str] = ()
    webhook_secret: bytes = b""
    extra_args: Sequence[str] = ()
    env: dict[str, str] = field(default_factory=dict)
    passwords: dict[str, str] = field(default_factory=dict)
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.workdir / "data"
        self.log = self.workdir / "gitserver.log"
        # The server's own TMPDIR (where it buffers request bodies), so tests can see
        # what it keeps there.
        self.tmp_dir = self.workdir / "tmp"
        self.tmp_dir.mkdir(exist_ok=True)
        self.env.setdefault("TMPDIR", str(self.tmp_dir))
        self.credentials_file = self.workdir / "credentials.yaml"
        if not self.passwords:
            self.passwords = {
                ADMIN: f"admin-{secrets.token_hex(8)}",
                READER: f"reader-{secrets.token_hex(8)}",
            }
        users = {
            ADMIN: {"password": self.passwords[ADMIN], "access": "write"},
            READER: {"password": self.passwords[READER], "access": "read"},
        }
        self.credentials_file.write_text(json.dumps({"users": users}))
        self.credentials_file.chmod(0o600)
        if self.webhook_urls and not self.webhook_secret:
            self.webhook_secret = secrets.token_hex(16).encode()
        self.secret_file = self.workdir / "webhook-secret"
        self.secret_file.write_bytes(self.webhook_secret + b"\n")
        if not self.port:
            self.port = processes.free_port()

    # ---- lifecycle ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def repo_url(self, name: str) -> str:
        return f"{self.url}/{name}.git"

    def args(self) -> list[str]:
        """Its flags after `platform run gitserver --listen=127.0.0.1:<port>`."""
        cmd = [
            "--data-dir",
            str(self.data_dir),
            "--credentials",
            str(self.credentials_file),
            "--threads",
            "8",
            *self.extra_args,
        ]
        for url in self.webhook_urls:
            cmd += ["--webhook-url", url]
        if self.webhook_urls:
            cmd += ["--webhook-secret-file", str(self.secret_file)]
        return cmd

    def start(self, timeout: float = 30.0) -> None:
        server = launch(
            "gitserver", self.args(), self.log, timeout=timeout, port=self.port, env=self.env
        )
        self.process = server.process

    def stop(self) -> int | None:
        """SIGTERM (graceful); the exit code."""
        if self.process is None:
            return None
        processes.stop(self.process, grace=30)
        code = self.process.returncode
        self.process = None
        return code

    def restart(self) -> None:
        self.stop()
        self.start()

    def scratch_bytes(self) -> int:
        """Bytes in the files (deleted ones too) the server holds open under its TMPDIR."""
        assert self.process is not None
        total = 0
        fds = Path(f"/proc/{self.process.pid}/fd")
        for fd in fds.iterdir() if fds.exists() else []:
            try:
                if os.readlink(fd).startswith(str(self.tmp_dir)):
                    total += os.stat(fd).st_size
            except OSError:
                continue  # closed meanwhile
        return total

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    # ---- clients -----------------------------------------------------------------------

    def auth_header(self, user: str = ADMIN) -> str:
        return basic_header(user, self.passwords[user])

    def git_env(self, user: str = ADMIN) -> dict[str, str]:
        """Environment for git/GitPython: the auth header via GIT_CONFIG_*, no prompts."""
        return {
            "GIT_CONFIG_COUNT": "2",
            "GIT_CONFIG_KEY_0": "http.extraHeader",
            "GIT_CONFIG_VALUE_0": self.auth_header(user),
            "GIT_CONFIG_KEY_1": "credential.helper",
            "GIT_CONFIG_VALUE_1": "",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ASKPASS": "/bin/false",
            "GIT_AUTHOR_NAME": "Test",
            "GIT_AUTHOR_EMAIL": "test@example.invalid",
            "GIT_COMMITTER_NAME": "Test",
            "GIT_COMMITTER_EMAIL": "test@example.invalid",
        }

    def git(
        self,
        *args: str,
        user: str | None = ADMIN,
        cwd: Path | None = None,
        check: bool = True,
        env: dict[str, str] | None = None,
        timeout: float = 300,
    ) -> subprocess.CompletedProcess[str]:
        """Run the git CLI as `user` (None: no credentials)."""
        full_env = dict(os.environ)
        full_env.update(self.git_env(user or ADMIN))
        if user is None:
            full_env["GIT_CONFIG_COUNT"] = "0"
        full_env.update(env or {})
        result = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"git {' '.join(args)} exited {result.returncode}:\n{result.stderr}"
            )
        return result

    def api(
        self, method: str, path: str, body: Any = None, user: str | None = ADMIN
    ) -> tuple[int, Any]:
        """Call the server's HTTP API; (status, parsed JSON or text)."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        if user is not None:
            name, _, value = self.auth_header(user).partition(": ")
            request.add_header(name, value)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")

    def create_repo(self, name: str) -> str:
        status, _ = self.api("POST", "/api/repos", {"name": name})
        assert status in (200, 201), f"creating repo {name!r}: HTTP {status}"
        return self.repo_url(name)


# ---- webhooks ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    body: bytes
    headers: dict[str, str]
    received_at: float  # time.monotonic()

    def json(self) -> Any:
        return json.loads(self.body)


class WebhookReceiver:
    """Records webhook POSTs; `stop()` and `start()` again keep the same port."""

    def __init__(self, port: int = 0, status: int = 200) -> None:
        self.port = port or processes.free_port()
        self.status = status
        self.deliveries: list[Delivery] = []
        self._arrived = threading.Condition()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/git"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                with receiver._arrived:
                    receiver.deliveries.append(
                        Delivery(body, dict(self.headers.items()), time.monotonic())
                    )
                    receiver._arrived.notify_all()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def wait(self, count: int, timeout: float = 30.0) -> list[Delivery]:
        """Wait until at least `count` deliveries arrived; return them all."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.deliveries) >= count, timeout):
                raise TimeoutError(
                    f"{len(self.deliveries)} of {count} webhook deliveries after {timeout}s"
                )
            return list(self.deliveries)
