"""`platform up --template` and `--package` in the `seed` stage, against the real git
server process, checked with the real git CLI: a template fetched over HTTP from a
branch of another repository on the same server (logged in through the user's own git
credential helper), packages in the seed commit, a changed package as exactly one commit
on top of a person's commit, an unchanged one as none, and the errors a user meets
(missing ref, no login, not a template, a clash)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bootstrap.config import ConfigError
from bootstrap.stages.base import StageContext
from bootstrap.stages.gitserver import GitServerStage
from bootstrap.stages.seed import SeedStage
from stacks.errors import PermanentError
from tests.integration.gitops.conftest import MakeContext, external_git_env, progress_lines
from tests.support.gitserver import READER, GitServer

pytestmark = pytest.mark.integration

SHOP = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: shop}
data: {host: "shop.${DOMAIN}", script: "echo ${HOME}", colour: blue}
"""


def git_log(server: GitServer, workdir: Path) -> list[str]:
    """`<sha> <subject>` of the gitops repo's main branch, newest first."""
    if not workdir.exists():
        server.git("clone", "-q", server.repo_url("gitops"), str(workdir))
    server.git("pull", "-q", "--ff-only", cwd=workdir)
    return server.git("log", "--format=%H %s", cwd=workdir).stdout.strip().splitlines()


def workshop_template(directory: Path) -> Path:
    """A template of one app, `hello`, with its Application in registry/CLUSTER/."""
    (directory / "registry/CLUSTER").mkdir(parents=True)
    (directory / "apps/hello").mkdir(parents=True)
    (directory / "README.md").write_text("# Workshop on ${CLUSTER}\n")
    (directory / "registry/CLUSTER/hello.yaml").write_text(
        "apiVersion: gitops.platform.local/v1alpha1\nkind: Application\n"
        "metadata: {name: hello, namespace: platform-system}\n"
        "spec:\n  source: {repoURL: '${GIT_REPO_URL}', path: apps/hello, targetRevision: HEAD}\n"
        "  destination: {namespace: hello}\n"
        "  syncPolicy: {automated: {prune: true}, syncOptions: [CreateNamespace=true]}\n"
    )
    (directory / "apps/hello/cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: hello}\n"
        "data: {url: 'https://hello.${DOMAIN}'}\n"
    )
    return directory


def publish(server: GitServer, template: Path, repo: str, branch: str) -> str:
    """Push `template` to branch `branch` of a new repository `repo` on `server`."""
    url = server.create_repo(repo)
    server.git("init", "-q", "-b", branch, cwd=template)
    server.git("add", "-A", cwd=template)
    server.git("commit", "-qm", "workshop template", cwd=template)
    server.git("push", "-q", url, f"HEAD:refs/heads/{branch}", cwd=template)
    return url


def credential_helper(server: GitServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The user's own git setup: a global config whose credential helper knows the
    server's read-only user (what `git config --global credential.helper store` gives)."""
    store = tmp_path / "git-credentials"
    store.write_text(
        server.url.replace("http://", f"http://{READER}:{server.passwords[READER]}@") + "\n"
    )
    store.chmod(0o600)
    config = tmp_path / "gitconfig"
    config.write_text(f"[credential]\n\thelper = store --file={store}\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))


def context(
    make_context: MakeContext, server: GitServer, tmp_path: Path, **env: str
) -> StageContext:
    ctx = make_context(**external_git_env(server, tmp_path / "config"), **env)
    GitServerStage().run(ctx)
    return ctx


def test_a_template_from_a_git_url_and_packages_one_commit_per_change(
    git_server: GitServer,
    make_context: MakeContext,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = publish(git_server, workshop_template(tmp_path / "tpl"), "workshop", "ws-2026")
    credential_helper(git_server, tmp_path, monkeypatch)
    shop = tmp_path / "pkgs/shop"
    shop.mkdir(parents=True)
    (shop / "cm.yaml").write_text(SHOP)
    (shop / "extra.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra}\n")
    ctx = context(
        make_context,
        git_server,
        tmp_path,
        PLATFORM_TEMPLATE=f"{url}#ws-2026",
        PLATFORM_PACKAGES=str(shop),
    )

    summary = SeedStage().run(ctx)
    assert summary.startswith("seeded ") and summary.endswith("; package(s) shop"), summary
    work = tmp_path / "work"
    log = git_log(git_server, work)
    assert len(log) == 1 and f"seed from {url}#ws-2026 at " in log[0], log
    # The template's own content, rendered, instead of gitops-template/'s ...
    assert (work / "README.md").read_text() == "# Workshop on gt\n"
    assert "https://hello.gitops.test" in (work / "apps/hello/cm.yaml").read_text()
    assert not (work / "apps/demo").exists()
    # ... with the platform's own part from this release,
    assert (work / "registry/gt/reconciler.yaml").exists()
    assert (work / "platform/reconciler").is_dir()
    # and the package beside it: its placeholders filled, anything else left alone.
    cm = (work / "apps/shop/cm.yaml").read_text()
    assert 'host: "shop.gitops.test"' in cm and 'script: "echo ${HOME}"' in cm
    app = (work / "registry/gt/shop.yaml").read_text()
    assert "path: apps/shop" in app and "gitops.platform.local/package: shop" in app
    assert f"repoURL: {git_server.url}/gitops.git" in app

    # Unchanged: verified, no commit.
    check = SeedStage().check(ctx)
    assert check.done, check.detail
    assert "package(s) shop up to date" in check.detail

    # A person's commit, then a changed package (one file edited, one deleted): exactly
    # one commit on top of theirs.
    (work / "apps/hello/mine.yaml").write_text("apiVersion: v1\nkind: ConfigMap\n")
    git_server.git("add", "-A", cwd=work)
    git_server.git("commit", "-qm", "my own change", cwd=work)
    git_server.git("push", "-q", "origin", "HEAD", cwd=work)
    theirs = git_server.git("rev-parse", "HEAD", cwd=work).stdout.strip()
    (shop / "cm.yaml").write_text(SHOP.replace("blue", "green"))
    (shop / "extra.yaml").unlink()
    assert not SeedStage().check(ctx).done
    summary = SeedStage().run(ctx)
    assert summary.startswith(f"package(s) shop updated: {theirs[:12]} -> "), summary
    log = git_log(git_server, work)
    assert len(log) == 3 and "update package(s) shop" in log[0]
    assert git_server.git("rev-parse", "HEAD^", cwd=work).stdout.strip() == theirs
    assert "colour: green" in (work / "apps/shop/cm.yaml").read_text()
    assert not (work / "apps/shop/extra.yaml").exists()
    assert (work / "apps/hello/mine.yaml").exists()

    # Again, unchanged: no commit.
    assert SeedStage().run(ctx).startswith("package(s) shop unchanged")
    assert len(git_log(git_server, work)) == 3

    # A package the run no longer names stays, and the run says so.
    ctx = context(make_context, git_server, tmp_path, PLATFORM_TEMPLATE=f"{url}#ws-2026")
    SeedStage().run(ctx)
    assert (work / "apps/shop/cm.yaml").exists()
    ctx = context(
        make_context,
        git_server,
        tmp_path,
        PLATFORM_PACKAGES=str(tmp_path / "pkgs/other"),
    )
    (tmp_path / "pkgs/other").mkdir()
    (tmp_path / "pkgs/other/a.json").write_text('{"apiVersion": "v1", "kind": "ConfigMap"}')
    SeedStage().run(ctx)
    assert any(
        "apps/shop/ came from a package this run does not name" in line
        for line in progress_lines(ctx)
    )
    assert len(git_log(git_server, work)) == 4


def test_template_and_package_errors_say_what_is_wrong(
    git_server: GitServer,
    make_context: MakeContext,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = publish(git_server, workshop_template(tmp_path / "tpl"), "workshop", "ws")
    # No login: the server asks for one and nothing may prompt.
    ctx = context(make_context, git_server, tmp_path, PLATFORM_TEMPLATE=f"{url}#ws")
    with pytest.raises(PermanentError, match="asks for a login"):
        SeedStage().run(ctx)
    credential_helper(git_server, tmp_path, monkeypatch)
    ctx = context(make_context, git_server, tmp_path, PLATFORM_TEMPLATE=f"{url}#nope")
    with pytest.raises(ConfigError, match="has no branch or tag 'nope'"):
        SeedStage().run(ctx)
    missing = f"{git_server.url}/missing.git"
    ctx = context(make_context, git_server, tmp_path, PLATFORM_TEMPLATE=missing)
    with pytest.raises(ConfigError, match="there is no git repository at"):
        SeedStage().run(ctx)
    # A directory that is not a template names what one holds.
    plain = tmp_path / "plain"
    (plain / "apps/x").mkdir(parents=True)
    (plain / "apps/x/cm.yaml").write_text("kind: ConfigMap\n")
    ctx = context(make_context, git_server, tmp_path, PLATFORM_TEMPLATE=str(plain))
    with pytest.raises(
        ConfigError, match=r"is not a platform template: it has no registry/CLUSTER/"
    ) as caught:
        SeedStage().run(ctx)
    assert "apps/<name>/" in caught.value.hint
    # A package named like an app of the template.
    demo = tmp_path / "elsewhere/demo"
    demo.mkdir(parents=True)
    (demo / "cm.yaml").write_text("kind: ConfigMap\n")
    ctx = context(make_context, git_server, tmp_path, PLATFORM_PACKAGES=str(demo))
    with pytest.raises(ConfigError, match=r"apps/demo/ from elsewhere"):
        SeedStage().run(ctx)
    # Nothing was pushed by any of these.
    assert git_server.git("ls-remote", git_server.repo_url("gitops")).stdout.strip() == ""
