"""The git server as users meet it: the real git CLI and GitPython against the real process.

Covers clone/fetch/push (protocol v2 for fetch), basic auth (401, 403 for the read-only
user), the repo API and name checks, the access log, concurrent pushes to one branch, a
50 MB push that survives a restart intact, and graceful shutdown on SIGTERM.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import git
import pytest

from stacks.gitserver.repos import HOOKS_DIR
from tests.support import processes
from tests.support.gitserver import ADMIN, READER, GitServer

pytestmark = pytest.mark.integration


def commit_file(
    server: GitServer, work: Path, name: str, content: str | bytes, message: str
) -> str:
    path = work / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    server.git("add", name, cwd=work)
    server.git("commit", "-q", "-m", message, cwd=work)
    return server.git("rev-parse", "HEAD", cwd=work).stdout.strip()


def descendants(pid: int) -> list[str]:
    """Command lines of all processes below `pid`."""
    children: dict[int, list[int]] = {}
    commands: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(") ", 1)[1].split()[1])
            commands[int(entry.name)] = (
                (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            )
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], list(children.get(pid, []))
    while todo:
        current = todo.pop()
        found.append(commands.get(current, ""))
        todo.extend(children.get(current, []))
    return found


def new_worktree(server: GitServer, path: Path) -> Path:
    server.git("init", "-q", "-b", "main", str(path))
    return path


def test_clone_fetch_push_with_git_cli(git_server: GitServer, tmp_path: Path) -> None:
    url = git_server.create_repo("gitops")
    work = new_worktree(git_server, tmp_path / "work")
    first = commit_file(git_server, work, "README.md", "hello\n", "first")
    git_server.git("push", url, "main", cwd=work)

    git_server.git("clone", "-q", url, str(tmp_path / "clone"), user=READER)
    clone = tmp_path / "clone"
    assert (clone / "README.md").read_text() == "hello\n"
    assert git_server.git("rev-parse", "HEAD", cwd=clone).stdout.strip() == first

    second = commit_file(git_server, work, "apps/demo.yaml", "kind: Demo\n", "second")
    git_server.git("push", url, "main", cwd=work)
    git_server.git("fetch", "-q", "origin", cwd=clone, user=READER)
    assert git_server.git("rev-parse", "origin/main", cwd=clone).stdout.strip() == second


def test_fetch_speaks_protocol_v2(git_server: GitServer, tmp_path: Path) -> None:
    url = git_server.create_repo("gitops")
    work = new_worktree(git_server, tmp_path / "work")
    commit_file(git_server, work, "a.txt", "a\n", "a")
    git_server.git("push", url, "main", cwd=work)
    result = git_server.git(
        "-c", "protocol.version=2", "ls-remote", url, user=READER, env={"GIT_TRACE_PACKET": "1"}
    )
    assert "< version 2" in result.stderr
    assert "refs/heads/main" in result.stdout


def test_gitpython_clone_commit_push(git_server: GitServer, tmp_path: Path) -> None:
    url = git_server.create_repo("gitops")
    env = git_server.git_env(ADMIN)
    with git.Repo.init(tmp_path / "seed", initial_branch="main") as seed:
        (tmp_path / "seed" / "kustomization.yaml").write_text("resources: []\n")
        seed.index.add(["kustomization.yaml"])
        seed.index.commit("seed")
        seed.create_remote("origin", url)
        with seed.git.custom_environment(**env):
            seed.remotes.origin.push("main").raise_if_error()
        pushed = seed.head.commit.hexsha

    with git.Repo.clone_from(url, tmp_path / "clone", env=git_server.git_env(READER)) as clone:
        assert clone.head.commit.hexsha == pushed
        assert str(clone.head.commit.message).strip() == "seed"


def test_missing_or_wrong_credentials_get_401(git_server: GitServer, tmp_path: Path) -> None:
    url = git_server.create_repo("gitops")
    request = urllib.request.Request(f"{url}/info/refs?service=git-upload-pack")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 401
    assert caught.value.headers["WWW-Authenticate"].startswith("Basic realm=")

    status, _ = git_server.api("GET", "/api/repos", user=None)
    assert status == 401

    anonymous = git_server.git("clone", url, str(tmp_path / "anon"), user=None, check=False)
    assert anonymous.returncode != 0

    # wrong password, given as URL userinfo (only in this test process): git reports 401
    wrong_url = url.replace("http://", "http://admin:Wr0ngPassw0rd@")
    wrong = git_server.git("ls-remote", wrong_url, user=None, check=False)
    assert wrong.returncode != 0
    assert "Authentication failed" in wrong.stderr
    assert "Wr0ngPassw0rd" not in git_server.log_text()


def test_reader_can_clone_but_not_push(git_server: GitServer, tmp_path: Path) -> None:
    url = git_server.create_repo("gitops")
    work = new_worktree(git_server, tmp_path / "work")
    commit_file(git_server, work, "a.txt", "a\n", "a")
    git_server.git("push", url, "main", cwd=work)

    git_server.git("clone", "-q", url, str(tmp_path / "clone"), user=READER)
    commit_file(git_server, tmp_path / "clone", "b.txt", "b\n", "b")
    refused = git_server.git(
        "push", "origin", "main", cwd=tmp_path / "clone", user=READER, check=False
    )
    assert refused.returncode != 0
    assert "403" in refused.stderr

    status, _ = git_server.api("POST", "/api/repos", {"name": "other"}, user=READER)
    assert status == 403
    # nothing changed on the server
    remote = git_server.git("ls-remote", url, "refs/heads/main", user=READER).stdout.split()[0]
    assert remote == git_server.git("rev-parse", "HEAD", cwd=work).stdout.strip()


def test_repo_api_creates_lists_and_rejects_bad_names(git_server: GitServer) -> None:
    assert git_server.api("POST", "/api/repos", {"name": "gitops"}) == (
        201,
        {"name": "gitops", "created": True, "path": "/gitops.git"},
    )
    status, body = git_server.api("POST", "/api/repos", {"name": "gitops.git"})
    assert (status, body["created"]) == (200, False)
    for bad in [
        "../etc",
        "..",
        "a/b/c",
        "a/../b",
        ".hidden",
        "-x",
        "",
        "a\x00b",
        "x" * 200,
        "a..b",
    ]:
        status, _ = git_server.api("POST", "/api/repos", {"name": bad})
        assert status == 400, bad
    assert git_server.api("GET", "/api/repos", user=READER) == (200, {"repos": ["gitops"]})
    entries = sorted(p.name for p in git_server.data_dir.iterdir())
    assert entries == [HOOKS_DIR, "gitops.git"]  # the server's own hooks, nothing else


def test_path_traversal_in_urls_is_refused(git_server: GitServer) -> None:
    git_server.create_repo("gitops")
    name, _, value = git_server.auth_header(ADMIN).partition(": ")
    for path in [
        "/../gitops.git/info/refs?service=git-upload-pack",
        "/..%2Fgitops.git/info/refs?service=git-upload-pack",
        "/%2e%2e/info/refs?service=git-upload-pack",
        "/gitops.git/../../etc/passwd",
        "/gitops.git/objects/../config",
        "/gitops.git/config",
    ]:
        connection = http.client.HTTPConnection("127.0.0.1", git_server.port, timeout=10)
        connection.request("GET", path, headers={name: value})
        response = connection.getresponse()
        body = response.read()
        connection.close()
        assert response.status in (400, 404), (path, response.status)
        assert b"[core]" not in body and b"root:" not in body


def test_first_push_creates_the_repo(git_server: GitServer, tmp_path: Path) -> None:
    work = new_worktree(git_server, tmp_path / "work")
    commit_file(git_server, work, "a.txt", "a\n", "a")
    git_server.git("push", git_server.repo_url("apps"), "main", cwd=work)
    assert git_server.api("GET", "/api/repos")[1] == {"repos": ["apps"]}
    # the read-only user cannot create one by pushing
    refused = git_server.git(
        "push", git_server.repo_url("other"), "main", cwd=work, user=READER, check=False
    )
    assert refused.returncode != 0
    assert not (git_server.data_dir / "other.git").exists()
    # fetching a missing repository is a 404, not a creation
    missing = git_server.git("ls-remote", git_server.repo_url("nothere"), check=False)
    assert missing.returncode != 0
    assert not (git_server.data_dir / "nothere.git").exists()


def test_access_log_has_requests_but_no_credentials(git_server: GitServer, tmp_path: Path) -> None:
    url = git_server.create_repo("gitops")
    work = new_worktree(git_server, tmp_path / "work")
    commit_file(git_server, work, "a.txt", "a\n", "a")
    git_server.git("push", url, "main", cwd=work)
    git_server.git("ls-remote", url, user=READER)
    git_server.git("ls-remote", url, user=None, check=False)
    time.sleep(0.2)
    log = git_server.log_text()
    assert 'admin "POST /gitops.git/git-receive-pack" 200' in log
    assert 'reader "GET /gitops.git/info/refs?service=git-upload-pack" 200' in log
    assert '- "GET /gitops.git/info/refs?service=git-upload-pack" 401' in log
    for password in git_server.passwords.values():
        assert password not in log
    assert "Authorization" not in log
    assert git_server.auth_header(ADMIN).split()[-1] not in log


def test_concurrent_pushes_one_wins_nothing_lost(git_server: GitServer, tmp_path: Path) -> None:
    url = git_server.create_repo("gitops")
    work = new_worktree(git_server, tmp_path / "work")
    commit_file(git_server, work, "base.txt", "base\n", "base")
    git_server.git("push", url, "main", cwd=work)
    clones = []
    for name in ("alice", "bob"):
        git_server.git("clone", "-q", url, str(tmp_path / name))
        commit_file(git_server, tmp_path / name, f"{name}.txt", f"{name}\n", f"from {name}")
        clones.append(tmp_path / name)

    results: dict[str, subprocess.CompletedProcess[str]] = {}
    barrier = threading.Barrier(2)

    def push(clone: Path) -> None:
        barrier.wait()
        results[clone.name] = git_server.git("push", "origin", "main", cwd=clone, check=False)

    threads = [threading.Thread(target=push, args=(c,)) for c in clones]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    codes = sorted(r.returncode == 0 for r in results.values())
    assert codes == [False, True], {k: v.stderr for k, v in results.items()}
    loser = next(name for name, r in results.items() if r.returncode != 0)
    winner = "bob" if loser == "alice" else "alice"
    assert any(
        word in results[loser].stderr
        for word in ("rejected", "non-fast-forward", "fetch first", "failed to update ref")
    ), results[loser].stderr

    # the loser integrates and pushes: both commits are on the server
    git_server.git("pull", "-q", "--rebase", "origin", "main", cwd=tmp_path / loser)
    git_server.git("push", "origin", "main", cwd=tmp_path / loser)
    git_server.git("clone", "-q", url, str(tmp_path / "final"), user=READER)
    files = sorted(p.name for p in (tmp_path / "final").iterdir() if p.suffix == ".txt")
    assert files == ["alice.txt", "base.txt", "bob.txt"]
    log = git_server.git("log", "--format=%s", cwd=tmp_path / "final").stdout.split("\n")
    assert log[:3] == [f"from {loser}", f"from {winner}", "base"]


@pytest.mark.timeout(300)
def test_50mb_push_survives_restart(git_server: GitServer, tmp_path: Path) -> None:
    url = git_server.create_repo("gitops")
    work = new_worktree(git_server, tmp_path / "work")
    blob = os.urandom(50 * 1024 * 1024)
    digest = hashlib.sha256(blob).hexdigest()
    head = commit_file(git_server, work, "big.bin", blob, "50 MB")
    del blob
    started = time.monotonic()
    git_server.git("push", url, "main", cwd=work)
    pushed_in = time.monotonic() - started
    assert pushed_in < 60

    git_server.restart()
    fsck = subprocess.run(
        ["git", "--git-dir", str(git_server.data_dir / "gitops.git"), "fsck", "--full", "--strict"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert fsck.returncode == 0, fsck.stderr
    git_server.git("clone", "-q", url, str(tmp_path / "clone"), user=READER)
    clone = tmp_path / "clone"
    assert git_server.git("rev-parse", "HEAD", cwd=clone).stdout.strip() == head
    assert hashlib.sha256((clone / "big.bin").read_bytes()).hexdigest() == digest


def test_sigterm_lets_a_push_in_flight_finish(
    git_server_factory: Callable[..., GitServer], tmp_path: Path
) -> None:
    server = git_server_factory()
    url = server.create_repo("gitops")
    work = new_worktree(server, tmp_path / "work")
    commit_file(server, work, "big.bin", os.urandom(30 * 1024 * 1024), "30 MB")
    env = dict(os.environ, **server.git_env(ADMIN))
    push = subprocess.Popen(
        ["git", "push", url, "main"],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # SIGTERM while receive-pack is storing the pack: the request is in flight
    process = server.process
    assert process is not None
    processes.wait_for(
        lambda: any(
            "unpack-objects" in cmd or "index-pack" in cmd for cmd in descendants(process.pid)
        ),
        30,
        "receive-pack storing the pushed pack",
        interval=0.002,
    )
    process.terminate()
    _, stderr = push.communicate(timeout=120)
    assert push.returncode == 0, stderr
    assert process.wait(timeout=60) == 0
    assert "received SIGTERM" in server.log_text()
    server.process = None

    # the pushed commit is there after a start
    server.start()
    remote = server.git("ls-remote", url, "refs/heads/main", user=READER).stdout.split()[0]
    assert remote == server.git("rev-parse", "HEAD", cwd=work).stdout.strip()
