"""Hostile and broken input never takes the git server down (issue 14, "Git server").

Each test drives the real server process (tests/support/gitserver.py) over loopback with
raw sockets where a well-behaved client cannot send the input: a forged access-log line,
an unauthenticated multi-GiB body, hundreds of slow connections, an invalid gzip body, a
force-push to `main`, and a burst of wrong passwords. Where the server must keep serving
others meanwhile, a clone runs while the hostile input is being handled. Every test
bounds what it opens and closes it in a `finally`.
"""

from __future__ import annotations

import base64
import http.client
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from tests.support import processes
from tests.support.gitserver import ADMIN, READER, GitServer

pytestmark = pytest.mark.integration

GiB = 1024**3


def seeded(server: GitServer, tmp_path: Path) -> str:
    """A `gitops` repository with one commit on main; its URL."""
    url = server.create_repo("gitops")
    work = tmp_path / "seed"
    server.git("init", "-q", "-b", "main", str(work))
    (work / "README.md").write_text("hello\n")
    server.git("add", "README.md", cwd=work)
    server.git("commit", "-q", "-m", "first", cwd=work)
    server.git("push", "-q", url, "main", cwd=work)
    return url


def connect(server: GitServer, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.create_connection(
        ("127.0.0.1", server.port), timeout=10, source_address=(source, 0)
    )
    return sock


def read_response(sock: socket.socket, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body start) of the response on `sock`."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


def http_request(
    server: GitServer,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    source: str = "127.0.0.1",
    timeout: float = 10.0,
) -> tuple[int, bytes]:
    """One request on its own connection from `source`: (status, body)."""
    conn = http.client.HTTPConnection(
        "127.0.0.1", server.port, timeout=timeout, source_address=(source, 0)
    )
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def basic(server: GitServer, user: str = ADMIN, password: str | None = None) -> str:
    secret = server.passwords[user] if password is None else password
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


def clone_ok(server: GitServer, url: str, dest: Path) -> float:
    """Clone as the reader; the seconds it took."""
    started = time.monotonic()
    server.git("clone", "-q", url, str(dest), user=READER, timeout=60)
    assert (dest / "README.md").read_text() == "hello\n"
    return time.monotonic() - started


@contextmanager
def in_background(work: Callable[[threading.Event], None]) -> Iterator[threading.Event]:
    """Run `work(stop)` in a thread until the block ends."""
    stop = threading.Event()
    thread = threading.Thread(target=work, args=(stop,), daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(timeout=30)


# ---- 1. the access log -----------------------------------------------------------------


def test_control_characters_cannot_forge_access_log_lines(git_server: GitServer) -> None:
    forged = 'FORGED 10.0.0.1 admin "GET /gitops.git/info/refs" 200'
    sock = connect(git_server)
    try:
        request = (
            f"GET /x%0d%0a{forged.replace(' ', '%20')}%1b[31m HTTP/1.1\r\n"
            "Host: x\r\nUser-Agent: evil\x85agent\r\nConnection: close\r\n\r\n"
        )
        sock.sendall(request.encode("latin-1"))
        status, _, _ = read_response(sock)
    finally:
        sock.close()
    assert status == 401
    time.sleep(0.3)
    lines = git_server.log_text().splitlines()
    assert not any(line.startswith("FORGED") for line in lines), lines[-5:]
    (line,) = [line for line in lines if "FORGED" in line]
    assert '"GET /x\\r\\nFORGED 10.0.0.1 admin \\"GET' in line
    assert "\\x1b[31m" in line and "\x1b" not in line
    assert '"evil\\x85agent"' in line


# ---- 2. bodies: auth first, and a budget that matches the scratch space ------------------


def test_unauthenticated_body_is_refused_before_it_is_read(
    git_server: GitServer, tmp_path: Path
) -> None:
    url = seeded(git_server, tmp_path)
    headers = (
        "POST /gitops.git/git-receive-pack HTTP/1.1\r\nHost: x\r\n"
        "Content-Type: application/x-git-receive-pack-request\r\n"
        f"Content-Length: {3 * GiB // 2}\r\n"
    )
    # A 1.5 GiB body (most of the pod's 2Gi /tmp) with no or wrong credentials: the
    # answer comes before any of the body is sent, and the connection closes.
    for auth in ("", f"Authorization: {basic(git_server, password='wrong')}\r\n"):
        sock = connect(git_server)
        try:
            sock.sendall((headers + auth + "\r\n").encode())
            status, response_headers, _ = read_response(sock, timeout=5)
            assert status == 401
            assert response_headers["www-authenticate"].startswith("Basic")
            assert response_headers.get("connection") == "close"
        finally:
            sock.close()

    # Anonymous uploads stream as fast as they can while a clone runs: the clone works
    # and the server buffers nothing of them.
    peak = [0]
    sent = [0]

    def flood(stop: threading.Event) -> None:
        chunk = b"\0" * (1024 * 1024)
        while not stop.is_set():
            try:
                with connect(git_server) as sock:
                    sock.sendall((headers + "\r\n").encode())
                    while not stop.is_set():
                        sock.sendall(chunk)
                        sent[0] += len(chunk)
            except OSError:
                continue  # the server closed it, as it should: again

    def watch(stop: threading.Event) -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], git_server.scratch_bytes())
            time.sleep(0.01)

    with in_background(flood), in_background(watch):
        time.sleep(0.5)
        clone_ok(git_server, url, tmp_path / "clone")
        time.sleep(0.5)
    assert peak[0] < 1024 * 1024, f"{peak[0]} bytes buffered of {sent[0]} sent anonymously"
    assert "Traceback" not in git_server.log_text()


def test_body_budget_bounds_all_uploads_together(
    git_server_factory: Callable[..., GitServer], tmp_path: Path
) -> None:
    server = git_server_factory(extra_args=["--max-body-size", "8Mi"])
    auth = f"Authorization: {basic(server)}\r\n"

    def post(length: int) -> socket.socket:
        sock = connect(server)
        sock.sendall(
            (
                f"POST /api/repos HTTP/1.1\r\nHost: x\r\n{auth}"
                f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
            ).encode()
        )
        return sock

    # one body larger than the limit: 413 at once
    sock = post(9 * 1024 * 1024)
    try:
        assert read_response(sock, timeout=5)[0] == 413
    finally:
        sock.close()
    # two bodies that fit alone but not together: the second gets 503 at once
    first = post(5 * 1024 * 1024)
    try:
        first.sendall(b"x" * 1024 * 1024)
        second = post(5 * 1024 * 1024)
        try:
            status, _, body = read_response(second, timeout=5)
            assert status == 503, body
        finally:
            second.close()
    finally:
        first.close()

    # the first one's share comes back when its connection goes
    def admitted() -> bool:
        sock = post(5 * 1024 * 1024)
        try:
            sock.sendall(b"x" * 5 * 1024 * 1024)
            return read_response(sock, timeout=10)[0] == 400  # not JSON: it was read
        finally:
            sock.close()

    processes.wait_for(admitted, 10, "the budget released by a closed connection")


# ---- 3. slow clients ---------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_slow_connections_do_not_lock_others_out(
    git_server_factory: Callable[..., GitServer], tmp_path: Path
) -> None:
    server = git_server_factory(extra_args=["--header-timeout", "4"])
    url = seeded(server, tmp_path)
    # More slow connections than the default limit (200), each dribbling its request
    # line one byte a second, never finishing its headers.
    slow: list[socket.socket] = []
    request = b"GET /gitops.git/info/refs?service=git-upload-pack HTTP/1.1\r\nHost: x\r\n"
    try:
        for _ in range(230):
            try:
                sock = socket.socket()
                sock.settimeout(2)
                sock.connect(("127.0.0.1", server.port))
                sock.setblocking(False)
                sock.send(request[:1])
                slow.append(sock)
            except OSError:
                break  # refused or timed out: the attack already reached the limit
        assert len(slow) >= 200

        def dribble(stop: threading.Event) -> None:
            position = 1
            while not stop.wait(1.0):
                for sock in slow:
                    with suppress(OSError):
                        sock.send(request[position : position + 1])
                position += 1

        with in_background(dribble):
            started = time.monotonic()
            assert http_request(server, "GET", "/healthz", timeout=5) == (200, b"ok\n")
            assert time.monotonic() - started < 3
            assert clone_ok(server, url, tmp_path / "clone") < 20

            # the slow ones are closed by the header timeout, dribbling or not
            def all_closed() -> bool:
                closed = 0
                for sock in slow:
                    try:
                        closed += sock.recv(1) == b""
                    except BlockingIOError:
                        pass
                    except OSError:
                        closed += 1
                return closed == len(slow)

            processes.wait_for(all_closed, 30, "the server closing slow connections")
    finally:
        for sock in slow:
            sock.close()


# ---- 4. broken gzip ----------------------------------------------------------------------


def test_invalid_gzip_body_is_a_400_and_one_log_line(git_server: GitServer, tmp_path: Path) -> None:
    url = seeded(git_server, tmp_path)
    for service in ("git-receive-pack", "git-upload-pack"):
        status, body = http_request(
            git_server,
            "POST",
            f"/gitops.git/{service}",
            body=b"\x1f\x8b this is not gzip at all" * 10,
            headers={
                "Authorization": basic(git_server),
                "Content-Type": f"application/x-{service}-request",
                "Content-Encoding": "gzip",
            },
        )
        assert status == 400 and b"gzip" in body, (status, body)
    time.sleep(0.3)
    log = git_server.log_text()
    assert "Traceback" not in log and "zlib.error" not in log
    assert log.count("refused a request body") == 2
    # a real fetch (git gzips its negotiation) still works
    clone_ok(git_server, url, tmp_path / "clone")


# ---- 5. the default branch ---------------------------------------------------------------


def test_default_branch_refuses_force_push_and_delete(
    git_server_factory: Callable[..., GitServer], tmp_path: Path
) -> None:
    server = git_server_factory()
    url = seeded(server, tmp_path)
    work = tmp_path / "work"
    server.git("clone", "-q", url, str(work))
    server.git("commit", "-q", "--amend", "-m", "rewritten", cwd=work)
    forced = server.git("push", "--force", "origin", "main", cwd=work, check=False)
    assert forced.returncode != 0
    assert "force-push to the default branch 'main' is refused" in forced.stderr
    deleted = server.git("push", "origin", ":main", cwd=work, check=False)
    assert deleted.returncode != 0
    assert "refusing to delete the current branch: refs/heads/main" in deleted.stderr
    # other branches may be rewritten and deleted; main still moves forward
    server.git("push", "-q", "origin", "HEAD:refs/heads/topic", cwd=work)
    server.git("commit", "-q", "--amend", "-m", "again", cwd=work)
    server.git("push", "-q", "--force", "origin", "HEAD:refs/heads/topic", cwd=work)
    server.git("push", "-q", "origin", ":topic", cwd=work)
    server.git("reset", "-q", "--hard", "origin/main", cwd=work)
    (work / "b.txt").write_text("b\n")
    server.git("add", "b.txt", cwd=work)
    server.git("commit", "-q", "-m", "forward", cwd=work)
    server.git("push", "-q", "origin", "main", cwd=work)

    # --allow-force-push applies to the repositories that exist at start
    server.stop()
    server.extra_args = ["--allow-force-push"]
    server.start()
    server.git("commit", "-q", "--amend", "-m", "rewritten", cwd=work)
    server.git("push", "-q", "--force", "origin", "main", cwd=work)
    # and without it again, they are protected again
    server.stop()
    server.extra_args = []
    server.start()
    server.git("commit", "-q", "--amend", "-m", "rewritten again", cwd=work)
    assert server.git("push", "--force", "origin", "main", cwd=work, check=False).returncode != 0


# ---- 6. password guessing ----------------------------------------------------------------


def test_wrong_passwords_are_throttled_per_client(git_server: GitServer) -> None:
    def status(source: str, authorization: str | None) -> int:
        headers = {"Authorization": authorization} if authorization else {}
        return http_request(git_server, "GET", "/api/repos", headers=headers, source=source)[0]

    good, wrong = basic(git_server, READER), basic(git_server, READER, "guess")
    # normal use never spends the budget: requests without credentials, good logins
    assert {status("127.0.0.1", None) for _ in range(30)} == {401}
    assert {status("127.0.0.1", good) for _ in range(30)} == {200}
    started = time.monotonic()
    guesses = [status("127.0.0.1", wrong) for _ in range(60)]
    assert time.monotonic() - started < 10  # answered at once, no thread held
    assert guesses[:10] == [401] * 10
    assert set(guesses[10:]) <= {401, 429} and guesses.count(429) >= 45
    # the guesser's address waits (even with the right password: it is not checked);
    # another client is unaffected
    assert status("127.0.0.1", good) == 429
    assert status("127.0.0.2", good) == 200
    assert status("127.0.0.2", wrong) == 401
    log = git_server.log_text()
    assert log.count("throttling logins from 127.0.0.1") <= 10
