"""stacks/program.py: every option reads its environment variable, the same way for
every component (the git server's PLATFORM_GIT_* and the unsealer's older names too);
the shared endpoints answer probes, metrics and a program's own POST routes, bounded."""

from __future__ import annotations

import socket
import threading
from email.message import Message

import pytest

from stacks.program import (
    MAX_BODY,
    Answer,
    Endpoints,
    ProgramOptions,
    Sample,
    metrics_text,
    registry_for,
)
from stacks.vault.unsealer import parse_args as unsealer_args


def test_options_read_their_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLATFORM_DEMO_WORKERS", "5")
    monkeypatch.setenv("PLATFORM_DEMO_HOOKS", "a, b")
    monkeypatch.setenv("PLATFORM_DEMO_DRY_RUN", "yes")
    monkeypatch.setenv("PLATFORM_DEMO_LEADER_ELECT", "true")
    # The variables are read when options are declared, as in every program's parse_args.
    options = ProgramOptions("demo", "a demo", kube=False, env_prefix="PLATFORM_DEMO_")
    options.add("--workers", type=int, default=2, help="workers")
    options.add_list("--hook", "hooks", env="HOOKS")
    options.add_flag("--dry-run", "do nothing")
    options.add_endpoints()
    options.add_leader_election("ns")
    args = options.parse([])
    assert (args.workers, args.hook, args.dry_run, args.leader_elect) == (5, ["a", "b"], True, True)
    assert (args.listen, args.lease_namespace) == ("127.0.0.1:0", "ns")
    args = options.parse(["--hook", "c", "--workers", "1", "--no-leader-elect"])
    assert (args.workers, args.hook, args.leader_elect) == (1, ["c"], False)
    assert "PLATFORM_DEMO_HOOKS" in options.parser.format_help()


def test_the_unsealer_keeps_its_older_variable_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULT_ADDR", "http://old:8200")
    monkeypatch.setenv("KUBECONFIG", "/k")
    monkeypatch.setenv("PLATFORM_UNSEALER_INTERVAL", "7")
    args = unsealer_args([])
    assert (args.address, args.kubeconfig, args.interval) == ("http://old:8200", "/k", 7.0)
    monkeypatch.setenv("PLATFORM_UNSEALER_ADDRESS", "http://new:8200")
    assert unsealer_args([]).address == "http://new:8200"


def test_metrics_text_has_the_process_and_the_programs_samples() -> None:
    registry = registry_for(
        lambda: [Sample("demo_syncs", "syncs", 3, True), Sample("demo_depth", "d", 1)]
    )
    text = metrics_text(registry).decode()
    assert "demo_syncs_total 3.0" in text and "demo_depth 1.0" in text
    assert "process_resident_memory_bytes" in text


def _request(port: int, raw: bytes) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(raw)
        chunks = []
        while chunk := conn.recv(4096):
            chunks.append(chunk)
    answer = b"".join(chunks)
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def test_endpoints_serve_probes_metrics_and_a_programs_post_routes() -> None:
    ready = threading.Event()
    seen: list[tuple[str, bytes]] = []

    def echo(headers: Message, body: bytes, peer: str) -> Answer:
        seen.append((str(headers.get("X-Demo")), body))
        return Answer(202, "took it\n")

    endpoints = Endpoints(
        "demo", "127.0.0.1:0", ready.is_set, posts={"/hook": echo}, collectors=[]
    ).start()
    try:
        port = endpoints.port
        get = b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        assert _request(port, get % b"/healthz") == (200, b"ok\n")
        assert _request(port, get % b"/readyz")[0] == 503
        ready.set()
        assert _request(port, get % b"/readyz") == (200, b"ok\n")
        assert b"process_resident_memory_bytes" in _request(port, get % b"/metrics")[1]
        post = b"POST %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s\r\n%s"
        assert _request(port, post % (b"/hook", b"Content-Length: 2\r\nX-Demo: d\r\n", b"hi")) == (
            202,
            b"took it\n",
        )
        assert seen == [("d", b"hi")]
        # Unknown routes, no body, a body beyond the bound, a length that is no number:
        # answered before the route sees anything.
        assert _request(port, post % (b"/other", b"Content-Length: 2\r\n", b"hi"))[0] == 404
        assert _request(port, post % (b"/hook", b"", b""))[0] == 400
        too_long = b"Content-Length: %d\r\n" % (MAX_BODY + 1)
        assert _request(port, post % (b"/hook", too_long, b"x"))[0] == 400
        assert _request(port, post % (b"/hook", b"Content-Length: abc\r\n", b"x"))[0] == 400
        assert len(seen) == 1
    finally:
        endpoints.stop()
