"""Hostile and broken input never takes the reconciler down (issue 14).

The real reconciler process against a real API server and real git: an alias bomb, keys
written twice, symlinks, paths outside the repository, and malformed or stalled
requests on its webhook endpoint. Each fails only what it touches, with a sentence that
names the file (and line); the process stays up, its memory bounded, and other
Applications keep syncing.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest

from stacks.kube.client import KubeClient
from stacks.reconciler.server import MAX_CONNECTIONS, REQUEST_DEADLINE
from stacks.signing import sign
from tests.integration.reconciler.conftest import (
    WEBHOOK_SECRET,
    Apps,
    GitRepo,
    Reconciler,
    condition,
    configmap,
    wait_until,
)

pytestmark = pytest.mark.integration

REFRESH = "gitops.platform.local/refresh"
HEAD = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bomb\n"


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


def _failed(apps: Apps, name: str, reason: str) -> str:
    obj = apps.wait(name, lambda o: condition(o, "Ready").get("reason") == reason, reason)
    return str(condition(obj, "Ready")["message"])


def _bomb(levels: int = 9) -> str:
    lines = [HEAD.rstrip("\n"), 'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\ndata: {k: v}\n"


def test_alias_bomb_fails_only_its_application_with_bounded_memory(
    reconciler: Reconciler, repo: GitRepo, apps: Apps, kube: KubeClient, namespace: str
) -> None:
    repo.write("healthy/cm.yaml", configmap("fine"))
    repo.write("bomb/cm.yaml", _bomb())
    rev = repo.commit("a 9-level alias bomb")
    pid = reconciler.process.pid
    baseline = _rss_mib(pid)
    apps.create("bomb", "bomb")
    apps.create("healthy", "healthy")
    peak = baseline
    deadline = time.monotonic() + 30
    message = ""
    while time.monotonic() < deadline:
        peak = max(peak, _rss_mib(pid))
        ready = condition(apps.get("bomb"), "Ready")
        if ready.get("reason") == "RenderFailed":
            message = str(ready["message"])
            break
        time.sleep(0.05)
    assert "bomb/cm.yaml:1: the object expands to about" in message, message
    assert "limit for one object" in message
    apps.wait_synced("healthy", rev)
    # The other Application keeps syncing while the bomb is retried.
    repo.write("healthy/cm.yaml", configmap("fine", {"k": "new"}))
    rev = repo.commit()
    apps.annotate("healthy", **{REFRESH: rev})
    apps.annotate("bomb", **{REFRESH: rev})
    apps.wait_synced("healthy", rev)
    peak = max(peak, _rss_mib(pid))
    assert reconciler.process.poll() is None
    assert peak - baseline < 64, (baseline, peak)  # the bomb expands to ~23 GiB
    assert kube.get("v1", "ConfigMap", "bomb", namespace) is None


def test_keys_written_twice_are_refused_with_file_and_line(
    reconciler: Reconciler, repo: GitRepo, apps: Apps, kube: KubeClient, namespace: str
) -> None:
    repo.write(
        "dup/secret.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dup\n"
        "data:\n  password: first-value\n  password: second-value\n",
    )
    repo.write(
        "dupjson/cm.json",
        '{"apiVersion": "v1", "kind": "ConfigMap",\n "metadata": {"name": "a"},\n'
        ' "metadata": {"name": "b"}}\n',
    )
    repo.write(
        "latin1/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: l\n",
    )
    (repo.work / "latin1" / "cm.yaml").write_bytes(
        b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: l\ndata: {k: caf\xe9}\n"
    )
    repo.commit()
    apps.create("dup", "dup")
    apps.create("dupjson", "dupjson")
    apps.create("latin1", "latin1")
    message = _failed(apps, "dup", "RenderFailed")
    assert "dup/secret.yaml:7: duplicate key 'password' (first at line 6)" in message
    assert "first-value" not in message and "second-value" not in message
    message = _failed(apps, "dupjson", "RenderFailed")
    assert "dupjson/cm.json:3: duplicate key 'metadata' (first at line 2)" in message
    message = _failed(apps, "latin1", "RenderFailed")
    assert "latin1/cm.yaml:5: the file is not UTF-8 text" in message and "line 5" in message
    for name in ("dup", "a", "b", "l"):
        assert kube.get("v1", "ConfigMap", name, namespace) is None


def test_symlinks_and_paths_outside_the_repository(
    reconciler: Reconciler, repo: GitRepo, apps: Apps, kube: KubeClient, namespace: str
) -> None:
    repo.write("real/cm.yaml", configmap("real"))
    (repo.work / "links").mkdir()
    os.symlink("../real/cm.yaml", repo.work / "links" / "cm.yaml")
    os.symlink("real", repo.work / "linkdir")
    rev = repo.commit()
    apps.create("dotslash", "./real/")
    apps.create("links", "links")
    apps.create("linkdir", "linkdir")
    apps.create("absolute", "/etc")
    apps.create("escape", "../..")
    apps.wait_synced("dotslash", rev)
    assert kube.get("v1", "ConfigMap", "real", namespace) is not None
    message = _failed(apps, "links", "RenderFailed")
    assert "links/cm.yaml: the file is a symbolic link, and symlinks are not followed" in message
    message = _failed(apps, "linkdir", "PathNotFound")
    assert "'linkdir' is a symbolic link, and symlinks are not followed" in message
    assert "is absolute; a path is relative to the repository root" in _failed(
        apps, "absolute", "InvalidSpec"
    )
    assert "leaves the repository" in _failed(apps, "escape", "InvalidSpec")


# ---- the webhook endpoint ------------------------------------------------------------


def _raw(reconciler: Reconciler, request: bytes, timeout: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", reconciler.port), timeout=timeout) as conn:
        conn.sendall(request)
        chunks: list[bytes] = []
        while True:
            chunk = conn.recv(4096)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0


def _post(body: bytes, headers: bytes) -> bytes:
    return b"POST /webhook HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + headers + b"\r\n" + body


def test_malformed_requests_get_an_answer_not_a_traceback(reconciler: Reconciler) -> None:
    body = b'{"repo": "gitops", "ref": "refs/heads/main", "after": "b"}'
    length = b"Content-Length: %d\r\n" % len(body)
    non_ascii = _post(body, length + b"X-Platform-Signature: sha256=\xff\xfe\xe9\r\n")
    assert _status(_raw(reconciler, non_ascii)) == 401
    assert _status(_raw(reconciler, _post(body, b"Content-Length: abc\r\n"))) == 400
    assert _status(_raw(reconciler, _post(body, b"Content-Length: -5\r\n"))) == 400
    signed = sign(WEBHOOK_SECRET.encode(), b"[1, 2]").encode()
    list_body = _post(b"[1, 2]", b"Content-Length: 6\r\nX-Platform-Signature: " + signed + b"\r\n")
    assert _status(_raw(reconciler, list_body)) == 400
    # A peer that promises a body and hangs up half way.
    with socket.create_connection(("127.0.0.1", reconciler.port), timeout=5) as conn:
        conn.sendall(_post(b'{"repo"', b"Content-Length: 1000\r\n"))
    time.sleep(0.3)
    assert reconciler.process.poll() is None
    assert "Traceback" not in reconciler.output()


def test_stalled_requests_are_bounded_in_time_and_number(reconciler: Reconciler) -> None:
    pid = reconciler.process.pid
    threads = _threads(pid)
    held = []
    try:
        for _ in range(100):
            conn = socket.create_connection(("127.0.0.1", reconciler.port), timeout=5)
            conn.sendall(b"POST /webhook HTTP/1.1\r\nContent-Len")  # and never more
            held.append(conn)
        time.sleep(0.5)
        assert _threads(pid) <= threads + MAX_CONNECTIONS + 4
        started = time.monotonic()
        for conn in held:  # each is answered 503 at once or cut off at the deadline
            conn.settimeout(REQUEST_DEADLINE + 5)
            while conn.recv(4096):
                pass
        assert time.monotonic() - started < REQUEST_DEADLINE + 5
    finally:
        for conn in held:
            conn.close()
    body = json.dumps({"repo": "nothing", "ref": "refs/heads/main", "after": "x"}).encode()
    signature = sign(WEBHOOK_SECRET.encode(), body).encode()
    answer = _raw(
        reconciler,
        _post(body, b"Content-Length: %d\r\nX-Platform-Signature: %s\r\n" % (len(body), signature)),
    )
    assert _status(answer) == 202
    assert "Traceback" not in reconciler.output()


def test_a_replayed_push_never_rolls_back(
    reconciler: Reconciler, repo: GitRepo, apps: Apps, kube: KubeClient, namespace: str
) -> None:
    repo.write("app/cm.yaml", configmap("replayed", {"k": "old"}))
    old = repo.commit("old")
    apps.create("replayed", "app")
    apps.wait_synced("replayed", old)
    repo.write("app/cm.yaml", configmap("replayed", {"k": "new"}))
    new = repo.commit("new")
    apps.annotate("replayed", **{REFRESH: new})
    apps.wait_synced("replayed", new)
    body = json.dumps(
        {"repo": repo.url, "ref": "refs/heads/main", "before": "0" * 40, "after": old}
    ).encode()
    headers = b"Content-Length: %d\r\nX-Platform-Signature: %s\r\n" % (
        len(body),
        sign(WEBHOOK_SECRET.encode(), body).encode(),
    )
    for _ in range(20):
        assert _status(_raw(reconciler, _post(body, headers))) == 202
    wait_until(lambda: "push to" in reconciler.output(), "the replay to be handled")
    time.sleep(1.0)
    live = kube.get("v1", "ConfigMap", "replayed", namespace)
    assert live is not None and live["data"] == {"k": "new"}
    assert apps.get("replayed")["status"]["lastAppliedRevision"] == new
