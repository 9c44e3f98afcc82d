"""`platform up --engine existing` with the real git server process as the platform's
external git server: the gitserver and seed stages pass, the repository holds the
rendered tree, a second `up` reports "already seeded"; then `platform git
url|credentials|clone` through the real console script. No password in argv, in the
run's log files, or in the clone's .git/config.

The runs stop after `seed` (`--only`): the later stages need the whole host platform
(the reconciler and friends as host processes), which the e2e tests start."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from bootstrap.config import load_settings
from bootstrap.gitops.repo import omitted_components, platform_values, render
from tests.integration.gitops.conftest import external_git_env, watching_argv
from tests.support.cli import json_events, run_platform
from tests.support.gitserver import ADMIN, GitServer
from tests.support.kwok import KwokCluster

pytestmark = pytest.mark.integration

DOMAIN = "cli.test"


@pytest.fixture
def platform_env(
    git_server: GitServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """The git server as git.url (PLATFORM_GIT_*), as the e2e tests configure it."""
    env = {**external_git_env(git_server, tmp_path / "config"), "PLATFORM_DOMAIN": DOMAIN}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def up_to_seed(cluster: KwokCluster, *extra: str) -> list[dict[str, object]]:
    """`platform up` stage by stage up to seed; the JSON events of the runs."""
    events: list[dict[str, object]] = []
    base = ("up", "--engine", "existing", "--kubeconfig", str(cluster.kubeconfig), "-o", "json")
    for stage in ("preflight", "cluster", "gitserver", "seed"):
        result = run_platform(*base, "--only", stage, *extra, timeout=300)
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
        events += json_events(result.stdout)
    return events


def finished(events: list[dict[str, object]]) -> dict[object, dict[str, object]]:
    return {e["stage"]: e for e in events if e["event"] == "stage_finished"}


def test_up_seeds_the_repository_once_and_platform_git_gets_at_it(
    platform_env: dict[str, str], git_server: GitServer, cluster: KwokCluster, tmp_path: Path
) -> None:
    password = git_server.passwords[ADMIN]
    token = base64.b64encode(f"{ADMIN}:{password}".encode()).decode()
    with watching_argv() as argv:
        first = finished(up_to_seed(cluster))
    assert first["gitserver"]["outcome"] == first["seed"]["outcome"] == "done"
    assert first["gitserver"]["summary"] == f"repository {git_server.repo_url('gitops')} created"
    assert str(first["seed"]["summary"]).startswith(f"seeded {git_server.repo_url('gitops')} at ")
    assert not [a for a in argv if password in a or token in a]
    assert any(" ls-remote " in a or " clone " in a for a in argv)

    # The repository holds exactly the rendered tree, in one commit.
    work = tmp_path / "work"
    git_server.git("clone", "-q", git_server.repo_url("gitops"), str(work))
    assert git_server.git("rev-list", "--count", "HEAD", cwd=work).stdout.strip() == "1"
    settings = load_settings(environ={**os.environ, "PLATFORM_NAME": "local"})
    expected = render(platform_values(settings), omitted_components(settings))
    got = {
        p.relative_to(work).as_posix(): p.read_bytes()
        for p in work.rglob("*")
        if p.is_file() and ".git" not in p.relative_to(work).parts
    }
    assert got == expected
    assert b"host: demo.cli.test" in got["apps/demo/50-ingress.yaml"]

    second = run_platform("up", "--only", "seed", timeout=300)
    assert second.returncode == 0, second.stdout[-3000:]
    assert "[seed] already seeded at " in second.stdout
    assert "[seed] done in " in second.stdout and ": already seeded at " in second.stdout
    assert git_server.git("rev-list", "--count", "origin/main", cwd=work).stdout.strip() == "1"

    # platform git url | credentials | clone
    url = run_platform("git", "url")
    assert url.returncode == 0 and url.stdout.strip() == git_server.repo_url("gitops")
    creds = run_platform("git", "credentials", "-o", "json")
    assert creds.returncode == 0, creds.stdout
    summary = json_events(creds.stdout)[-1]
    assert summary["username"] == ADMIN and summary["password"] == password
    text = run_platform("git", "credentials")
    assert f"username: {ADMIN}" in text.stdout and f"password: {password}" in text.stdout

    target = tmp_path / "clone"
    with watching_argv() as clone_argv:
        cloned = run_platform("git", "clone", str(target))
    assert cloned.returncode == 0, cloned.stdout + cloned.stderr
    assert f"Cloned {git_server.repo_url('gitops')} into {target}" in cloned.stdout
    assert (target / "registry/local/demo.yaml").is_file()
    config = (target / ".git/config").read_text()
    assert git_server.repo_url("gitops") in config
    assert password not in config and token not in config and "extraHeader" not in config
    assert not [a for a in clone_argv if password in a or token in a]
    again = run_platform("git", "clone", str(target))
    assert again.returncode == 1 and "is not empty" in again.stderr

    # No password in any log of these runs (the log files are the full debug record).
    home = Path(os.environ["PLATFORM_HOME"])
    logs = list(home.rglob("*.log"))
    assert logs
    for path in logs:
        content = path.read_text(errors="replace")
        assert password not in content and token not in content, path
    assert password not in second.stdout + second.stderr


def test_up_upgrade_template_adds_one_commit_only_when_the_template_changed(
    platform_env: dict[str, str], git_server: GitServer, cluster: KwokCluster, tmp_path: Path
) -> None:
    up_to_seed(cluster)
    upgrade = run_platform("up", "--upgrade-template", "--only", "seed", timeout=300)
    assert upgrade.returncode == 0, upgrade.stdout[-3000:]
    assert "the template is unchanged" in upgrade.stdout
    work = tmp_path / "work"
    git_server.git("clone", "-q", git_server.repo_url("gitops"), str(work))
    assert git_server.git("rev-list", "--count", "HEAD", cwd=work).stdout.strip() == "1"

    # A new domain renders differently: `--upgrade-template` commits it on top.
    changed = run_platform(
        "up", "--upgrade-template", "--only", "seed", env={"PLATFORM_DOMAIN": "other.test"}
    )
    assert changed.returncode == 0, changed.stdout[-3000:]
    assert "template upgraded: " in changed.stdout
    git_server.git("pull", "-q", cwd=work)
    assert git_server.git("rev-list", "--count", "HEAD", cwd=work).stdout.strip() == "2"
    assert "host: demo.other.test" in (work / "apps/demo/50-ingress.yaml").read_text()
