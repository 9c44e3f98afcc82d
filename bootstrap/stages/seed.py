"""Stage 4, `seed`: render the template and the packages into the GitOps repository.

The rendered tree (bootstrap.gitops.repo, from gitops-template/ or the user's own
`--template` DIR or URL#REF, bootstrap.gitops.template) is committed by "platform
bootstrap" and pushed with GitPython through bootstrap.gitops.git_client, the login in
the git process's environment only (never in a URL or argv). History is never rewritten
(every push is a fast-forward):

- an empty repository gets one commit: the rendered template plus the packages;
- a repository that has commits keeps them, whatever people committed since: the
  template is not applied again (kubefirst's template, too, only starts a repository);
- `platform up --upgrade-template` (the fact `upgrade_template` in the StageContext)
  adds one commit on top with the re-rendered template when it differs: the files the
  template owns are rewritten, stale files in the generated platform/<component>/
  directories removed, anything else (people's own apps) left alone;
- packages (`--package DIR`, bootstrap.gitops.packages) are re-applied on every run, as
  idpbuilder does: apps/<name>/ and registry/<cluster>/<name>.yaml rewritten from the
  directory, one commit when anything differs, none when nothing does. The check clones
  the repository to tell, so a re-run with unchanged packages is still "verified".

After a push to a platform whose reconciler already runs, the stage waits until the
root Application and each package's Application are Synced and Healthy at the new
commit, so `platform up --package DIR` ends when the package is delivered.

A server that creates repositories on first push (see the gitserver stage) gets a local
`git init` with the repository as origin. Called by the stage runner.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from bootstrap import __version__
from bootstrap.config import check_content
from bootstrap.gitops.git_client import (
    DEFAULT_BRANCH,
    Checkout,
    RepoNotFound,
    remote_heads,
    seeded_revision,
)
from bootstrap.gitops.packages import (
    Package,
    check_clashes,
    owned_dirs,
    package_mark,
    packages_of,
    render_packages,
)
from bootstrap.gitops.repo import (
    generated_dirs,
    laptop_repo_url,
    omitted_components,
    people_repo_url,
    platform_values,
    render,
)
from bootstrap.gitops.template import template_source
from bootstrap.stages.appwait import app_problem, app_timeout
from bootstrap.stages.base import CheckResult, StageContext
from bootstrap.stages.gitserver import git_login
from stacks.errors import PermanentError, PlatformError
from stacks.reconciler.api import API_VERSION, KIND, AppKey
from stacks.reconciler.inspect import request_sync
from stacks.reconciler.install import NAMESPACE

UPGRADE_FACT = "upgrade_template"
ROOT_APP = "root"
SEED_MESSAGE = "platform bootstrap: seed from {template} (platform {version})"
UPGRADE_MESSAGE = "platform bootstrap: upgrade from {template} (platform {version})"
PACKAGES_MESSAGE = "platform up: update package(s) {names} (platform {version})"
WAIT_POLL_SECONDS = 0.5


def upgrade_requested(ctx: StageContext) -> bool:
    return bool(ctx.facts.get(UPGRADE_FACT))


def _names(packages: list[Package]) -> str:
    return ", ".join(p.name for p in packages)


def _with_packages(message: str, packages: list[Package]) -> str:
    return f"{message}; package(s) {_names(packages)}" if packages else message


def _tree(root: Path) -> tuple[set[str], dict[str, bytes]]:
    """Every path of a checkout (not .git/) and the contents of its registry/ files."""
    paths: set[str] = set()
    registry: dict[str, bytes] = {}
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".git"]
        for name in names:
            relative = (Path(folder) / name).relative_to(root).as_posix()
            paths.add(relative)
            if relative.startswith("registry/") and relative.endswith((".yaml", ".yml")):
                registry[relative] = (root / relative).read_bytes()
    return paths, registry


def _registry_of(files: dict[str, bytes], cluster: str) -> dict[str, bytes]:
    return {p: c for p, c in files.items() if p.startswith(f"registry/{cluster}/")}


class SeedStage:
    name = "seed"
    description = "render the template and packages and push them to the repository"
    requires: tuple[str, ...] = ("gitserver",)

    def timeout(self, ctx: StageContext) -> float:
        return ctx.settings.stage_timeout

    def check(self, ctx: StageContext) -> CheckResult:
        if upgrade_requested(ctx):
            return CheckResult(False, "--upgrade-template asks for the template to be re-rendered")
        try:
            url = laptop_repo_url(ctx.settings, ctx.kube)  # may open a port-forward
            login = git_login(ctx.settings, ctx.state)
            sha = seeded_revision(remote_heads(url, login, 10))
        except PlatformError as error:
            return CheckResult(False, str(error))
        if not sha:
            return CheckResult(False, f"{url} has no commits")
        detail = f"already seeded at {sha[:12]}"
        if ctx.settings.sources.get("template") == "flag":
            detail += (
                " (--template seeds a new repository; add --upgrade-template to apply it "
                "to this one as one commit)"
            )
        packages = packages_of(ctx.settings)
        if not packages:
            return CheckResult(True, detail)
        try:
            check_content(ctx.settings)
            files = render_packages(packages, platform_values(ctx.settings))
            with tempfile.TemporaryDirectory(prefix="platform-seed-") as workdir:
                checkout = Checkout.clone(url, Path(workdir) / "gitops", login)
                try:
                    changed = self._apply_packages(ctx, checkout, packages, files)
                finally:
                    checkout.close()
        except PlatformError as error:
            return CheckResult(False, str(error))
        if changed:
            return CheckResult(False, f"package(s) {_names(packages)} differ from the repository")
        return CheckResult(True, f"{detail}; package(s) {_names(packages)} up to date")

    def plan(self, ctx: StageContext) -> list[str]:
        settings = ctx.settings
        url = people_repo_url(settings)  # a plan opens no port-forward
        source = template_source(settings)
        lines = [f"template: {source.describe()}"]
        packages = packages_of(settings)
        if packages:
            lines.append(
                "packages (re-applied on every run): "
                + ", ".join(f"{p.path} as apps/{p.name}/" for p in packages)
            )
        if source.url:  # a plan fetches nothing
            what = "the template, fetched and rendered,"
        else:
            files = render(
                platform_values(settings), omitted_components(settings), source.directory
            )
            what = f"the rendered template ({len(files)} files)"
        extra = " with the packages" if packages else ""
        if upgrade_requested(ctx):
            lines.append(f"re-render {what} and commit it{extra} to {url} if it differs")
        else:
            lines.append(f"push {what}{extra} to {url} if it has no commits")
            if packages:
                lines.append("else commit the packages if they differ from the repository")
        return lines

    def run(self, ctx: StageContext) -> str:
        settings = ctx.settings
        check_content(settings)
        packages = packages_of(settings)
        package_files = render_packages(packages, platform_values(settings))
        url = laptop_repo_url(settings, ctx.kube)
        login = git_login(settings, ctx.state)
        with tempfile.TemporaryDirectory(prefix="platform-seed-") as workdir:
            ctx.progress.step(self.name, f"cloning {url}")
            target = Path(workdir) / "gitops"
            try:
                checkout = Checkout.clone(url, target, login)
            except RepoNotFound:
                checkout = Checkout.init(url, target, login)  # push-to-create
            try:
                ctx.checkpoint()
                summary, pushed = self._update(
                    ctx, checkout, Path(workdir), packages, package_files
                )
            finally:
                checkout.close()
        if pushed:
            self._wait_delivered(ctx, pushed, packages)
        return summary

    def _update(
        self,
        ctx: StageContext,
        checkout: Checkout,
        workdir: Path,
        packages: list[Package],
        package_files: dict[str, bytes],
    ) -> tuple[str, str]:
        """Seed, upgrade or update the packages in `checkout`: (summary, the sha pushed
        on top of existing history, or '')."""
        settings = ctx.settings
        omit = omitted_components(settings)
        cluster = settings.name
        source = template_source(settings)
        url = checkout.url
        fresh = not checkout.has_commits()
        upgrade = upgrade_requested(ctx) and not fresh
        template_files: dict[str, bytes] = {}
        label = source.label
        if fresh or upgrade:
            if not source.builtin:
                ctx.progress.step(self.name, f"reading the template {source.describe()}")
            directory, label = source.materialise(workdir)
            template_files = render(platform_values(settings), omit, directory, source.label)
        if fresh:
            check_clashes(packages, template_files, _registry_of(template_files, cluster), cluster)
            files = {**template_files, **package_files}
            ctx.progress.step(self.name, f"committing the rendered template ({len(files)} files)")
            checkout.write_tree(files)
            message = SEED_MESSAGE.format(template=label, version=__version__)
            sha = checkout.commit(_with_packages(message, packages))
            ctx.progress.step(self.name, f"pushing {sha[:12]}")
            checkout.push(DEFAULT_BRANCH)
            ctx.log.info("seeded %s at %s with %d files", url, sha, len(files))
            summary = f"seeded {url} at {sha[:12]} ({len(files)} files)"
            return _with_packages(summary, packages), ""

        before = checkout.head_sha()
        if not upgrade and not packages:
            ctx.progress.note(self.name, f"already seeded at {before[:12]}: left as it is")
            return f"already seeded at {before[:12]}", ""
        if upgrade:
            ctx.progress.step(self.name, "re-rendering the template over the repository")
            checkout.write_tree(template_files, generated_dirs(omit))
        if not self._apply_packages(ctx, checkout, packages, package_files):
            what = "the template is" if upgrade else f"package(s) {_names(packages)}"
            return f"{what} unchanged: the repository stays at {before[:12]}", ""
        if upgrade:
            message = UPGRADE_MESSAGE.format(template=label, version=__version__)
            message = _with_packages(message, packages)
        else:
            message = PACKAGES_MESSAGE.format(names=_names(packages), version=__version__)
        new = checkout.commit(message)
        ctx.progress.step(self.name, f"pushing {new[:12]}")
        checkout.push()
        ctx.log.info("updated %s: %s -> %s (%s)", url, before, new, message)
        kind = "template upgraded" if upgrade else f"package(s) {_names(packages)} updated"
        return f"{kind}: {before[:12]} -> {new[:12]} (one new commit)", new

    def _apply_packages(
        self,
        ctx: StageContext,
        checkout: Checkout,
        packages: list[Package],
        files: dict[str, bytes],
    ) -> bool:
        """Write the packages into a checkout (nothing committed); whether anything in
        the checkout now differs from its HEAD."""
        cluster = ctx.settings.name
        paths, registry = _tree(checkout.root)
        check_clashes(packages, paths, registry, cluster)
        wanted = {p.name for p in packages}
        for path, content in sorted(registry.items()):
            mark = package_mark(content)
            if mark and mark not in wanted:
                ctx.progress.note(
                    self.name,
                    f"{path} and apps/{mark}/ came from a package this run does not name: "
                    "left in the repository (delete them with a commit to remove the app)",
                )
        return checkout.write_tree(files, owned_dirs(packages))

    def _wait_delivered(self, ctx: StageContext, sha: str, packages: list[Package]) -> None:
        """On a running platform: the root and the packages' Applications Synced and
        Healthy at `sha` (a sync is requested, so no interval is waited out). Before the
        reconciler stage has run there is nothing to wait for: it delivers them."""
        reconciler = ctx.state.load()["stages"].get("reconciler", {})
        if reconciler.get("outcome") not in ("done", "verified"):
            return
        client = ctx.kube()
        if client.get(API_VERSION, KIND, ROOT_APP, NAMESPACE) is None:
            return
        timeout = app_timeout(ctx)
        for name in [ROOT_APP, *(p.name for p in packages)]:
            deadline = time.monotonic() + timeout
            requested = False
            while True:
                ctx.checkpoint()
                app = client.get(API_VERSION, KIND, name, NAMESPACE)
                if app is not None and not requested:
                    request_sync(client, AppKey.of(app))
                    requested = True
                sync = ((app or {}).get("status") or {}).get("sync") or {}
                revision = str(sync.get("revision") or "")
                problem = app_problem(app, name)
                if not problem and revision != sha:
                    problem = f"Application {name} is at {revision[:12] or 'no revision'}, not {sha[:12]} yet"
                if not problem:
                    break
                ctx.progress.step(self.name, f"waiting: {problem}")
                if time.monotonic() > deadline:
                    raise PermanentError(
                        f"{problem} (waited {timeout:.0f}s after pushing {sha[:12]})",
                        hint="run `platform apps` to see why; fix the package or the repository "
                        "and run `platform up` again",
                    )
                ctx.wait(WAIT_POLL_SECONDS)
