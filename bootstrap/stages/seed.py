"""Stage 4, `seed`: render gitops-template/ and push it as the repository's first commit.

The rendered tree (bootstrap.gitops.repo) is committed by "platform bootstrap" and
pushed with GitPython through bootstrap.gitops.git_client, the login in the git process's
environment only (never in a URL or argv). History is never rewritten:

- an empty repository gets one commit, the rendered template;
- a repository that has commits is left as it is ("already seeded at <sha>"), whatever
  people committed since;
- `platform up --upgrade-template` (the fact `upgrade_template` in the StageContext)
  adds one commit on top with the re-rendered template when it differs: the files the
  template owns are rewritten, stale files in the generated platform/<component>/
  directories removed, anything else (people's own apps) left alone.

A server that creates repositories on first push (see the gitserver stage) gets a local
`git init` with the repository as origin. Called by the stage runner.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from bootstrap import __version__
from bootstrap.gitops.git_client import (
    DEFAULT_BRANCH,
    Checkout,
    RepoNotFound,
    remote_heads,
    seeded_revision,
)
from bootstrap.gitops.repo import (
    generated_dirs,
    laptop_repo_url,
    omitted_components,
    people_repo_url,
    platform_values,
    render,
)
from bootstrap.stages.base import CheckResult, StageContext
from bootstrap.stages.gitserver import git_login
from stacks.errors import PlatformError

UPGRADE_FACT = "upgrade_template"
SEED_MESSAGE = "platform bootstrap: seed from gitops-template (platform {version})"
UPGRADE_MESSAGE = "platform bootstrap: upgrade from gitops-template (platform {version})"


def upgrade_requested(ctx: StageContext) -> bool:
    return bool(ctx.facts.get(UPGRADE_FACT))


class SeedStage:
    name = "seed"
    description = "render gitops-template/ and push the first commit"
    requires: tuple[str, ...] = ("gitserver",)

    def timeout(self, ctx: StageContext) -> float:
        return ctx.settings.stage_timeout

    def check(self, ctx: StageContext) -> CheckResult:
        if upgrade_requested(ctx):
            return CheckResult(False, "--upgrade-template asks for the template to be re-rendered")
        try:
            url = laptop_repo_url(ctx.settings, ctx.kube)  # may open a port-forward
            sha = seeded_revision(remote_heads(url, git_login(ctx.settings, ctx.state), 10))
        except PlatformError as error:
            return CheckResult(False, str(error))
        if not sha:
            return CheckResult(False, f"{url} has no commits")
        return CheckResult(True, f"already seeded at {sha[:12]}")

    def plan(self, ctx: StageContext) -> list[str]:
        url = people_repo_url(ctx.settings)  # a plan opens no port-forward
        files = render(platform_values(ctx.settings), omitted_components(ctx.settings))
        if upgrade_requested(ctx):
            return [
                f"re-render the template ({len(files)} files); commit it to {url} if it differs"
            ]
        return [f"push the rendered template ({len(files)} files) to {url} if it has no commits"]

    def run(self, ctx: StageContext) -> str:
        settings = ctx.settings
        omit = omitted_components(settings)
        files = render(platform_values(settings), omit)
        url = laptop_repo_url(settings, ctx.kube)
        login = git_login(settings, ctx.state)
        with tempfile.TemporaryDirectory(prefix="platform-seed-") as workdir:
            ctx.progress.step(self.name, f"cloning {url}")
            target = Path(workdir) / "gitops"
            try:
                checkout = Checkout.clone(url, target, login)
            except RepoNotFound:
                checkout = Checkout.init(url, target, login)  # push-to-create
            ctx.checkpoint()
            if checkout.has_commits():
                sha = checkout.head_sha()
                if not upgrade_requested(ctx):
                    ctx.progress.note(self.name, f"already seeded at {sha[:12]}: left as it is")
                    return f"already seeded at {sha[:12]}"
                ctx.progress.step(self.name, "re-rendering the template over the repository")
                if not checkout.write_tree(files, generated_dirs(omit)):
                    return f"the template is unchanged: the repository stays at {sha[:12]}"
                new = checkout.commit(UPGRADE_MESSAGE.format(version=__version__))
                ctx.progress.step(self.name, f"pushing the template upgrade {new[:12]}")
                checkout.push()
                ctx.log.info("upgraded the template in %s: %s -> %s", url, sha, new)
                return f"template upgraded: {sha[:12]} -> {new[:12]} (one new commit)"
            ctx.progress.step(self.name, f"committing the rendered template ({len(files)} files)")
            checkout.write_tree(files)
            sha = checkout.commit(SEED_MESSAGE.format(version=__version__))
            ctx.progress.step(self.name, f"pushing {sha[:12]}")
            checkout.push(DEFAULT_BRANCH)
            ctx.log.info("seeded %s at %s with %d files", url, sha, len(files))
            return f"seeded {url} at {sha[:12]} ({len(files)} files)"
