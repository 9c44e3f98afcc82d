"""The `gitserver` and `seed` stages against the real git server process (an external
git server as far as the platform knows), checked with the real git CLI: one seed commit
however often it runs, people's commits kept, `--upgrade-template` as one commit on top,
and no password in argv, logs or progress lines."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

import bootstrap.gitops.repo as gitops_repo
from bootstrap.gitops.repo import omitted_components, platform_values, render
from bootstrap.stages.base import StageContext
from bootstrap.stages.gitserver import GitServerStage
from bootstrap.stages.seed import UPGRADE_FACT, SeedStage
from stacks.errors import PermanentError
from tests.integration.gitops.conftest import (
    MakeContext,
    external_git_env,
    progress_lines,
    secret_file,
    watching_argv,
)
from tests.support.gitserver import ADMIN, GitServer

pytestmark = pytest.mark.integration


def git_log(server: GitServer, workdir: Path) -> list[str]:
    """`<sha> <author>|<subject>` of the gitops repo's main branch, newest first."""
    if not workdir.exists():
        server.git("clone", "-q", server.repo_url("gitops"), str(workdir))
    server.git("pull", "-q", "--ff-only", cwd=workdir)
    out = server.git("log", "--format=%H %an|%s", cwd=workdir).stdout
    return out.strip().splitlines()


def tree(workdir: Path) -> dict[str, bytes]:
    return {
        p.relative_to(workdir).as_posix(): p.read_bytes()
        for p in workdir.rglob("*")
        if p.is_file() and ".git" not in p.relative_to(workdir).parts
    }


def seeded_context(make_context: MakeContext, server: GitServer, tmp_path: Path) -> StageContext:
    return make_context(**external_git_env(server, tmp_path / "config"))


def test_seeding_twice_makes_exactly_one_commit_holding_the_rendered_tree(
    git_server: GitServer, make_context: MakeContext, tmp_path: Path, debug_log: Path
) -> None:
    ctx = seeded_context(make_context, git_server, tmp_path)
    with watching_argv() as argv:
        created = GitServerStage().run(ctx)
        first = SeedStage().run(ctx)
    assert created == f"repository {git_server.repo_url('gitops')} created"
    assert first.startswith(f"seeded {git_server.repo_url('gitops')} at ")
    assert ctx.state.outputs()["git_url"] == git_server.repo_url("gitops")

    check = SeedStage().check(ctx)
    assert check.done and check.detail.startswith("already seeded at ")
    second = SeedStage().run(ctx)
    assert second.startswith("already seeded at ")
    assert GitServerStage().check(ctx).done

    work = tmp_path / "work"
    log = git_log(git_server, work)
    assert len(log) == 1
    assert log[0].split(" ", 1)[1].startswith("platform bootstrap|platform bootstrap: seed")
    assert log[0].split(" ")[0].startswith(check.detail.rsplit(" ", 1)[1])
    expected = render(platform_values(ctx.settings), omitted_components(ctx.settings))
    assert tree(work) == expected
    assert "registry/gt/demo.yaml" in expected and "registry/gt/gitserver.yaml" not in expected

    # The password never reached a command line, the log, or the progress lines.
    password = git_server.passwords[ADMIN]
    token = base64.b64encode(f"{ADMIN}:{password}".encode()).decode()
    assert any("ls-remote" in a or "clone" in a for a in argv)  # the watcher saw git
    assert not [a for a in argv if password in a or token in a]
    logged = debug_log.read_text()
    assert "gitops" in logged
    assert password not in logged and token not in logged
    lines = progress_lines(ctx)
    assert any("cloning" in line for line in lines)
    assert not [line for line in lines if password in line]
    assert password not in git_server.log_text() and token not in git_server.log_text()


def test_a_users_commit_is_left_in_place(
    git_server: GitServer, make_context: MakeContext, tmp_path: Path
) -> None:
    ctx = seeded_context(make_context, git_server, tmp_path)
    GitServerStage().run(ctx)
    SeedStage().run(ctx)
    work = tmp_path / "work"
    git_log(git_server, work)
    deployment = work / "apps/demo/30-deployment.yaml"
    deployment.write_text(deployment.read_text().replace("replicas: 1", "replicas: 3"))
    git_server.git("commit", "-qam", "scale the demo", cwd=work)
    git_server.git("push", "-q", "origin", "HEAD", cwd=work)
    user_sha = git_server.git("rev-parse", "HEAD", cwd=work).stdout.strip()

    assert SeedStage().run(ctx) == f"already seeded at {user_sha[:12]}"
    log = git_log(git_server, work)
    assert len(log) == 2 and log[0].startswith(user_sha)
    assert "replicas: 3" in deployment.read_text()


def test_upgrade_template_adds_one_commit_on_top(
    git_server: GitServer,
    make_context: MakeContext,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ctx = seeded_context(make_context, git_server, tmp_path)
    GitServerStage().run(ctx)
    SeedStage().run(ctx)
    work = tmp_path / "work"
    git_log(git_server, work)
    (work / "apps/mine").mkdir()
    (work / "apps/mine/app.yaml").write_text("kind: ConfigMap\n")
    (work / "platform/dns/stale.yaml").write_text("kind: ConfigMap\n")
    git_server.git("add", "-A", cwd=work)
    git_server.git("commit", "-qm", "my app", cwd=work)
    git_server.git("push", "-q", "origin", "HEAD", cwd=work)
    user_sha = git_server.git("rev-parse", "HEAD", cwd=work).stdout.strip()

    # Without the flag the repository is never touched, even when the template changed.
    monkeypatch.setattr(gitops_repo, "COMPONENT_IMAGE", "platform-components:9.9.9")
    assert SeedStage().run(ctx).startswith("already seeded at ")
    assert len(git_log(git_server, work)) == 2

    ctx.facts[UPGRADE_FACT] = True
    assert not SeedStage().check(ctx).done
    summary = SeedStage().run(ctx)
    assert summary.startswith(f"template upgraded: {user_sha[:12]} -> ")
    log = git_log(git_server, work)
    assert len(log) == 3 and "platform bootstrap: upgrade" in log[0]
    parent = git_server.git("rev-parse", "HEAD^", cwd=work).stdout.strip()
    assert parent == user_sha  # on top: history kept
    assert (
        "platform-components:9.9.9" in (work / "platform/reconciler/30-deployment.yaml").read_text()
    )
    assert (work / "apps/mine/app.yaml").exists()  # people's own files stay
    assert not (work / "platform/dns/stale.yaml").exists()  # generated dirs follow the release

    again = SeedStage().run(ctx)
    assert again.startswith("the template is unchanged")
    assert len(git_log(git_server, work)) == 3


def test_a_wrong_password_stops_with_a_hint(
    git_server: GitServer, make_context: MakeContext, tmp_path: Path
) -> None:
    env = external_git_env(git_server, tmp_path / "config")
    env["PLATFORM_GIT_PASSWORD_FILE"] = str(secret_file(tmp_path / "wrong", "not-the-password"))
    ctx = make_context(**env)
    with pytest.raises(PermanentError) as caught:
        GitServerStage().run(ctx)
    assert "refused" in str(caught.value) and "git.password_file" in caught.value.hint
    assert "not-the-password" not in str(caught.value)
    with pytest.raises(PermanentError, match="refused the credentials"):
        SeedStage().run(ctx)
    assert not SeedStage().check(ctx).done


def test_a_server_that_is_down_is_a_retryable_error(
    git_server: GitServer, make_context: MakeContext, tmp_path: Path
) -> None:
    from stacks.errors import TransientError

    ctx = seeded_context(make_context, git_server, tmp_path)
    git_server.stop()
    with pytest.raises(TransientError, match=f"failed to reach the git server at {git_server.url}"):
        GitServerStage().run(ctx)
    assert not GitServerStage().check(ctx).done
