"""Benchmark the git server against plain git serving the same repository, in one run.

    .venv/bin/python bench/gitserver_bench.py [--rounds 10] [--files 300] [--hooks 30]

Servers, each on its own copy of the same seeded bare repository:
    ours        `platform run gitserver` (waitress + git http-backend, basic auth, webhooks)
    dulwich     dulwich's smart-HTTP WSGI app under waitress (the other candidate backend)
    cgi         plain `git http-backend` under a minimal CGI server (peer)
    daemon      `git daemon` (peer: the git protocol, no HTTP at all)

Measured with the real git CLI, rounds interleaved over servers so that load from other
processes spreads evenly: a clone of the seeded repository (`--files` files over 10
commits) and a push of a fresh 100-file commit. Prints medians and the ratios of ours
(and dulwich) to each peer; the goal is within 2x. Then the push -> webhook delivery
latency of ours (receiver in this process): p50/p95 from the moment `git push` returns
(negative: delivered before the client had finished reading the response).
Results go in bench/README.md, section "## Git server".
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from stacks.gitserver.repos import REPO_CONFIG  # noqa: E402 - after the path is set

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "Bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def git(*args: str, cwd: Path | None = None, extra: list[str] | None = None) -> str:
    env = dict(os.environ, **GIT_ENV)
    result = subprocess.run(
        ["git", *(extra or []), *args], cwd=cwd, env=env, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port}")


# ---- the minimal CGI server and the dulwich server (run as child processes) -------------


def serve_cgi(root: str, port: int) -> None:
    """Plain `git http-backend` per request, no auth: the classic CGI deployment."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                data = bytearray()
                while True:
                    size = int(self.rfile.readline().split(b";")[0], 16)
                    if size == 0:
                        self.rfile.readline()
                        return bytes(data)
                    data += self.rfile.read(size)
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _run(self) -> None:
            path, _, query = self.path.partition("?")
            body = self._body() if self.command == "POST" else b""
            env = {
                "PATH": os.environ["PATH"],
                "GIT_PROJECT_ROOT": root,
                "GIT_HTTP_EXPORT_ALL": "1",
                "GATEWAY_INTERFACE": "CGI/1.1",
                "REQUEST_METHOD": self.command,
                "PATH_INFO": path,
                "QUERY_STRING": query,
                "REMOTE_USER": "bench",
                "CONTENT_LENGTH": str(len(body)),
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
                "HTTP_GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
            }
            out = subprocess.run(
                ["git", "http-backend"], input=body, env=env, capture_output=True
            ).stdout
            head, _, payload = out.partition(b"\r\n\r\n")
            status = 200
            headers = []
            for line in head.decode("latin-1").split("\r\n"):
                name, _, value = line.partition(":")
                if name.lower() == "status":
                    status = int(value.split()[0])
                elif name:
                    headers.append((name, value.strip()))
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            self._run()

        def do_POST(self) -> None:
            self._run()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def serve_dulwich(root: str, port: int, threads: int) -> None:
    import waitress
    from dulwich.repo import Repo
    from dulwich.server import DictBackend
    from dulwich.web import make_wsgi_chain

    repos: dict[str, Any] = {"/repo.git": Repo(str(Path(root) / "repo.git"))}
    app = make_wsgi_chain(DictBackend(repos))
    waitress.serve(app, host="127.0.0.1", port=port, threads=threads, _quiet=True)


# ---- the benchmark ------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    url: str  # repository URL
    process: subprocess.Popen[bytes]
    extra: list[str] = field(default_factory=list)  # git -c options (auth)
    clone_s: list[float] = field(default_factory=list)
    push_s: list[float] = field(default_factory=list)
    big_s: list[float] = field(default_factory=list)


def seed_repo(work: Path, files: int) -> Path:
    """A source repository with `files` files over 10 commits."""
    src = work / "seed"
    git("init", "-q", "-b", "main", str(src))
    per_commit = max(1, files // 10)
    for batch in range(10):
        for index in range(batch * per_commit, min(files, (batch + 1) * per_commit)):
            path = src / f"dir{index % 20}" / f"file{index}.yaml"
            path.parent.mkdir(exist_ok=True)
            path.write_text("".join(f"key{line}: {os.urandom(24).hex()}\n" for line in range(40)))
        git("add", "-A", cwd=src)
        git("commit", "-q", "-m", f"batch {batch}", cwd=src)
    return src


def prepare_pushes(src: Path, work: Path, count: int) -> Path:
    """A clone with `count` branches push-0.., each one new commit of 100 new files."""
    clone = work / "pusher"
    git("clone", "-q", str(src), str(clone))
    for index in range(count):
        git("checkout", "-q", "-B", f"push-{index}", "origin/main", cwd=clone)
        folder = clone / f"new{index}"
        folder.mkdir()
        for number in range(100):
            (folder / f"f{number}.yaml").write_text(
                "".join(f"v{line}: {os.urandom(24).hex()}\n" for line in range(40))
            )
        git("add", "-A", cwd=clone)
        git("commit", "-q", "-m", f"100 files #{index}", cwd=clone)
    return clone


def prepare_big_pushes(clone: Path, count: int, megabytes: int) -> None:
    """Branches big-0.. in `clone`, each one commit adding one random `megabytes` MB file."""
    for index in range(count):
        git("checkout", "-q", "-B", f"big-{index}", "origin/main", cwd=clone)
        (clone / "big.bin").write_bytes(os.urandom(megabytes * 1024 * 1024))
        git("add", "big.bin", cwd=clone)
        git("commit", "-q", "-m", f"big #{index}", cwd=clone)


def timed(*args: str, cwd: Path | None = None, extra: list[str] | None = None) -> float:
    """Seconds one `git ARGS` takes."""
    started = time.perf_counter()
    git(*args, cwd=cwd, extra=extra)
    return time.perf_counter() - started


def start_servers(
    work: Path, src: Path, threads: int, hook_url: str, args_tuned: bool
) -> list[Server]:
    servers: list[Server] = []
    logs = work / "logs"
    logs.mkdir()

    def bare(name: str) -> Path:
        root = work / name
        root.mkdir()
        git("clone", "-q", "--bare", str(src), str(root / "repo.git"))
        git("--git-dir", str(root / "repo.git"), "config", "http.receivepack", "true")
        return root

    def spawn(cmd: list[str], log: str) -> subprocess.Popen[bytes]:
        with open(logs / log, "wb") as out:
            return subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    # ours, with the settings its repositories get
    root = bare("ours")
    for key, value in REPO_CONFIG if args_tuned else ():
        git("--git-dir", str(root / "repo.git"), "config", key, value)
    (root / "repo.git").rename(root / "data")
    data = root / "repos"
    data.mkdir()
    (root / "data").rename(data / "repo.git")
    secret = work / "hook-secret"
    secret.write_text("bench-secret\n")
    creds = work / "credentials.json"
    password = base64.b16encode(os.urandom(8)).decode()
    creds.write_text(json.dumps({"users": {"admin": {"password": password, "access": "write"}}}))
    port = free_port()
    platform = Path(sys.executable).parent / "platform"
    cmd = (
        [str(platform), "run", "gitserver"]
        if platform.exists()
        else [
            sys.executable,
            "-m",
            "stacks.gitserver.program",
        ]
    )
    process = spawn(
        [
            *cmd,
            "--data-dir",
            str(data),
            "--listen",
            f"127.0.0.1:{port}",
            "--credentials",
            str(creds),
            "--threads",
            str(threads),
            "--webhook-url",
            hook_url,
            "--webhook-secret-file",
            str(secret),
            "--log-level",
            "WARNING",
        ],
        "ours.log",
    )
    token = base64.b64encode(f"admin:{password}".encode()).decode()
    header = f"http.extraHeader=Authorization: Basic {token}"
    servers.append(Server("ours", f"http://127.0.0.1:{port}/repo.git", process, ["-c", header]))

    # dulwich under waitress
    root = bare("dulwich")
    port = free_port()
    process = spawn(
        [sys.executable, __file__, "--serve-dulwich", str(root), str(port), str(threads)],
        "dulwich.log",
    )
    servers.append(Server("dulwich", f"http://127.0.0.1:{port}/repo.git", process))

    # plain git http-backend under a minimal CGI server
    root = bare("cgi")
    port = free_port()
    process = spawn([sys.executable, __file__, "--serve-cgi", str(root), str(port)], "cgi.log")
    servers.append(Server("cgi", f"http://127.0.0.1:{port}/repo.git", process))

    # git daemon
    root = bare("daemon")
    port = free_port()
    process = spawn(
        [
            "git",
            "daemon",
            "--reuseaddr",
            "--export-all",
            "--enable=receive-pack",
            f"--base-path={root}",
            "--listen=127.0.0.1",
            f"--port={port}",
            str(root),
        ],
        "daemon.log",
    )
    servers.append(Server("daemon", f"git://127.0.0.1:{port}/repo.git", process))

    for server in servers:
        wait_port(int(server.url.rsplit(":", 1)[1].split("/")[0]))
    return servers


class Hooks:
    """Receives webhooks in this process; records arrival time per `after` sha."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.lock = threading.Condition()
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                now = time.perf_counter()
                self.send_response(204)
                self.end_headers()
                with hooks.lock:
                    hooks.arrived[json.loads(body)["after"]] = now
                    hooks.lock.notify_all()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, sha: str, timeout: float = 10) -> float:
        with self.lock:
            self.lock.wait_for(lambda: sha in self.arrived, timeout)
            return self.arrived[sha]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="gitserver-bench-"))
    hooks = Hooks()
    servers: list[Server] = []
    try:
        print(f"git {git('--version').split()[-1]}, {os.cpu_count()} CPUs, work dir {work}")
        src = seed_repo(work, args.files)
        pusher = prepare_pushes(src, work, args.rounds)
        big_rounds = min(3, args.rounds)
        prepare_big_pushes(pusher, big_rounds, args.big_mb)
        servers = start_servers(work, src, args.threads, hooks.url, not args.untuned)
        # warm up: one clone from each (page cache, imports)
        for server in servers:
            target = work / f"warm-{server.name}"
            git("clone", "-q", server.url, str(target), extra=server.extra)
            shutil.rmtree(target)

        for index in range(args.rounds):
            order = servers[index % len(servers) :] + servers[: index % len(servers)]
            for server in order:
                target = work / f"clone-{server.name}-{index}"
                server.clone_s.append(
                    timed("clone", "-q", server.url, str(target), extra=server.extra)
                )
                shutil.rmtree(target)
                ref = f"push-{index}"
                spec = f"{ref}:refs/heads/{ref}"
                server.push_s.append(
                    timed("push", "-q", server.url, spec, cwd=pusher, extra=server.extra)
                )

        for index in range(big_rounds):
            for server in servers:
                spec = f"big-{index}:refs/heads/big-{index}"
                server.big_s.append(
                    timed("push", "-q", server.url, spec, cwd=pusher, extra=server.extra)
                )

        print(
            f"\nmedians: clone of {args.files} files and push of a 100-file commit"
            f" ({args.rounds} rounds), push of one {args.big_mb} MB file ({big_rounds} rounds):"
        )
        print(f"  {'server':<8} {'clone ms':>9} {'push ms':>9} {'big push ms':>12}")
        for server in servers:
            print(
                f"  {server.name:<8} {statistics.median(server.clone_s) * 1000:>9.1f}"
                f" {statistics.median(server.push_s) * 1000:>9.1f}"
                f" {statistics.median(server.big_s) * 1000:>12.1f}"
            )
        by_name = {s.name: s for s in servers}
        print("\nratios (lower is better, goal <= 2.0):")
        for candidate in ("ours", "dulwich"):
            for peer in ("cgi", "daemon"):
                c, p = by_name[candidate], by_name[peer]
                clone = statistics.median(c.clone_s) / statistics.median(p.clone_s)
                push = statistics.median(c.push_s) / statistics.median(p.push_s)
                big = statistics.median(c.big_s) / statistics.median(p.big_s)
                print(
                    f"  {candidate:>7}/{peer:<7} clone {clone:5.2f}x   push {push:5.2f}x"
                    f"   big push {big:5.2f}x"
                )

        # webhook latency: small pushes to ours, delivery measured against push return
        ours = by_name["ours"]
        latencies, after_start = [], []
        for index in range(args.hooks):
            git("checkout", "-q", "-B", f"hook-{index}", "origin/main", cwd=pusher)
            (pusher / "hook.txt").write_text(f"{index} {os.urandom(8).hex()}\n")
            git("add", "hook.txt", cwd=pusher)
            git("commit", "-q", "-m", f"hook {index}", cwd=pusher)
            sha = git("rev-parse", "HEAD", cwd=pusher).strip()
            started = time.perf_counter()
            git(
                "push",
                "-q",
                ours.url,
                f"hook-{index}:refs/heads/hook-{index}",
                cwd=pusher,
                extra=ours.extra,
            )
            returned = time.perf_counter()
            arrived = hooks.wait(sha)
            latencies.append((arrived - returned) * 1000)
            after_start.append((arrived - started) * 1000)
        print(f"\npush -> webhook delivery over {args.hooks} pushes (goal p50 < 100 ms):")
        print(
            f"  after `git push` returned: p50 {percentile(latencies, 0.5):.1f} ms,"
            f" p95 {percentile(latencies, 0.95):.1f} ms, max {max(latencies):.1f} ms"
        )
        print(
            f"  after `git push` started:  p50 {percentile(after_start, 0.5):.1f} ms,"
            f" p95 {percentile(after_start, 0.95):.1f} ms"
        )
        return 0
    finally:
        for server in servers:
            if server.process.poll() is None:
                os.killpg(server.process.pid, signal.SIGTERM)
                try:
                    server.process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(server.process.pid, signal.SIGKILL)
                    server.process.wait()
        hooks.server.shutdown()
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--serve-cgi"]:
        serve_cgi(argv[1], int(argv[2]))
        return 0
    if argv[:1] == ["--serve-dulwich"]:
        serve_dulwich(argv[1], int(argv[2]), int(argv[3]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10, help="clones and pushes per server")
    parser.add_argument("--files", type=int, default=300, help="files in the seeded repo")
    parser.add_argument("--hooks", type=int, default=30, help="pushes for webhook latency")
    parser.add_argument(
        "--untuned", action="store_true", help="serve ours without its repository settings"
    )
    parser.add_argument("--big-mb", type=int, default=20, help="size of the big push")
    parser.add_argument("--threads", type=int, default=8, help="server worker threads")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
