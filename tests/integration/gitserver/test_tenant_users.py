"""Tenant git users (issue 19) against the real git server process and the git CLI.

The users file is committed to the `gitops` repository (hashed passwords only) and the
server reads it at each push (`--repo-users`): a tenant clones and pushes its own
repository, `tenants/<name>`, and gets 403 for any other (another tenant's, the GitOps
repository), whether it exists or not; a plain password in the committed file is
refused; removing a tenant from the file ends its login; the admin deletes a repository.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from stacks.gitserver.auth import hash_password
from tests.support import processes
from tests.support.gitserver import ADMIN, READER, GitServer

pytestmark = pytest.mark.integration

USERS_FILE = "tenants/git-users.yaml"


def publish_users(server: GitServer, work: Path, users: dict[str, Any]) -> None:
    (work / "tenants").mkdir(parents=True, exist_ok=True)
    (work / USERS_FILE).write_text(json.dumps({"users": users}))
    server.git("add", "-A", cwd=work)
    server.git("commit", "-q", "--allow-empty", "-m", "tenant users", cwd=work)
    server.git("push", "-q", server.repo_url("gitops"), "HEAD:main", cwd=work)


def login_refused(result: subprocess.CompletedProcess[str]) -> bool:
    """A 401: git then asks for a user name, which these calls never give."""
    return result.returncode != 0 and (
        "401" in result.stderr or "could not read Username" in result.stderr
    )


def tenant(name: str, password: str) -> dict[str, Any]:
    return {
        "passwordHash": hash_password(password),
        "access": "write",
        "repos": [f"tenants/{name}"],
    }


def seed(server: GitServer, work: Path, repo: str) -> None:
    server.git("init", "-q", "-b", "main", str(work))
    (work / "README.md").write_text(f"{repo}\n")
    server.git("add", "-A", cwd=work)
    server.git("commit", "-q", "-m", "first", cwd=work)
    server.git("push", "-q", server.repo_url(repo), "HEAD:main", cwd=work)


def test_tenants_reach_only_their_repository(
    git_server_factory: Callable[..., GitServer], tmp_path: Path
) -> None:
    server = git_server_factory(extra_args=["--repo-users", f"gitops:{USERS_FILE}"])
    server.create_repo("gitops")
    gitops = tmp_path / "gitops"
    server.git("init", "-q", "-b", "main", str(gitops))
    alice, bob = secrets.token_hex(8), secrets.token_hex(8)
    server.passwords.update({"alice": alice, "bob": bob})
    publish_users(server, gitops, {"alice": tenant("alice", alice), "bob": tenant("bob", bob)})
    seed(server, tmp_path / "a", "tenants/alice")
    seed(server, tmp_path / "b", "tenants/bob")
    assert alice not in (gitops / USERS_FILE).read_text()

    # Alice clones and pushes her own repository.
    mine = tmp_path / "alice-clone"
    server.git("clone", "-q", server.repo_url("tenants/alice"), str(mine), user="alice")
    (mine / "app.yaml").write_text("kind: ConfigMap\n")
    server.git("add", "-A", cwd=mine, user="alice")
    server.git("commit", "-q", "-m", "mine", cwd=mine, user="alice")
    server.git("push", "-q", "origin", "HEAD:main", cwd=mine, user="alice")

    # ... and nothing else: Bob's, the GitOps repository, a name that does not exist.
    for repo in ("tenants/bob", "gitops", "tenants/nobody"):
        denied = server.git(
            "clone",
            "-q",
            server.repo_url(repo),
            str(tmp_path / f"x-{repo.replace('/', '-')}"),
            user="alice",
            check=False,
        )
        assert denied.returncode != 0 and "403" in denied.stderr, denied.stderr
    pushed = server.git(
        "push",
        "-q",
        server.repo_url("tenants/bob"),
        "HEAD:main",
        cwd=mine,
        user="alice",
        check=False,
    )
    assert pushed.returncode != 0 and "403" in pushed.stderr
    status, listing = server.api("GET", "/api/repos", user="alice")
    assert status == 200 and listing["repos"] == ["tenants/alice"]
    status, _ = server.api("POST", "/api/repos", {"name": "tenants/alice2"}, user="alice")
    assert status == 403
    status, _ = server.api("DELETE", "/api/repos/tenants/bob", user="alice")
    assert status == 403
    # The cluster's read-only user still reads every repository.
    server.git("clone", "-q", server.repo_url("tenants/bob"), str(tmp_path / "r"), user=READER)

    # A wrong password, and a committed plain password, get no access.
    server.passwords["mallory"] = "plain-text-password"
    publish_users(
        server,
        gitops,
        {
            "alice": tenant("alice", alice),
            "mallory": {
                "password": "plain-text-password",
                "access": "write",
                "repos": ["tenants/bob"],
            },
        },
    )

    # The whole file is refused (a plain password in it): the last good one stays.
    def logged(text: str) -> bool:
        # The file is read again when a tenant logs in after a push: Alice does.
        server.git("ls-remote", server.repo_url("tenants/alice"), user="alice")
        return text in server.log_text()

    processes.wait_for(
        lambda: logged("failed to load tenant users"),
        timeout=10,
        what="the refusal of the plain-password file in the log",
        interval=0.3,
    )
    wrong = server.git("ls-remote", server.repo_url("tenants/bob"), user="mallory", check=False)
    assert login_refused(wrong)
    server.git("ls-remote", server.repo_url("tenants/bob"), user="bob")  # still there

    # An oversized file is refused by its size before it is read: the last good one stays.
    (gitops / USERS_FILE).write_text("# " + "x" * (1024 * 1024 + 16) + "\nusers: {}\n")
    server.git("commit", "-q", "-am", "an oversized users file", cwd=gitops)
    server.git("push", "-q", server.repo_url("gitops"), "HEAD:main", cwd=gitops)
    processes.wait_for(
        lambda: logged("more than 1048576 allowed"),
        timeout=10,
        what="the refusal of the oversized users file in the log",
        interval=0.3,
    )
    server.git("ls-remote", server.repo_url("tenants/bob"), user="bob")  # still there

    # Bob removed: his login ends at the push; Alice's goes on.
    publish_users(server, gitops, {"alice": tenant("alice", alice)})
    processes.wait_for(
        lambda: logged("loaded 1 tenant user(s)"),
        timeout=10,
        what="the users file without bob",
        interval=0.3,
    )
    gone = server.git("ls-remote", server.repo_url("tenants/bob"), user="bob", check=False)
    assert login_refused(gone)
    server.git("ls-remote", server.repo_url("tenants/alice"), user="alice")

    status, _ = server.api("DELETE", "/api/repos/tenants/bob", user=ADMIN)
    assert status == 204
    status, listing = server.api("GET", "/api/repos", user=ADMIN)
    assert "tenants/bob" not in listing["repos"]
