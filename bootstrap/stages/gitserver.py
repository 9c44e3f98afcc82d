"""Stage 3, `gitserver`: a git server that answers, and the `gitops` repository on it.

With `git.url` (a team's Gitea or GitLab, or the project's server run as a host process
in the e2e tests) nothing is deployed: the stage checks that the server answers with
the read-write login (`git.username`, password from `git.password_file`) and creates
the repository. The project's own server answers `/healthz` and creates it with
`POST /api/repos`; another kind of server (404 there) is left to create it on the first
push, which the `seed` stage does, and the stage says so.

Without `git.url` the stage deploys the project's server from stacks/gitserver/manifests:
it generates the read-write and read-only passwords once (0600 files in the state dir,
registered with stacks.redact), creates the Secrets the Deployment mounts
(`platform-git/platform-gitserver-credentials`, key credentials.yaml, and
`platform-git/platform-gitserver-webhook`, key secret: the reconciler's webhook HMAC
key), applies the manifests, waits for the Deployment and reaches the server through
its Ingress, http://git.<domain> (k3d), or through a port-forward over the Kubernetes
API (`git.access`; auto on other clusters: bootstrap/forwards.py). The tests run both:
kwok runs no containers, but forwards the pod's port to the project's real server.

Records the output `git_url` (the repository's URL on this machine, or with a
port-forward the kubectl command that opens one and the URL then). `remove` deletes
the namespace it deployed into. Called by the stage runner; `git_login` is also used by
the `seed` stage and `platform git`.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from bootstrap.config import Settings
from bootstrap.forwards import forward_problem, git_through_port_forward
from bootstrap.gitops.git_client import GitLogin, RepoNotFound, remote_heads
from bootstrap.gitops.repo import (
    laptop_base_url,
    laptop_repo_url,
    people_repo_url,
)
from bootstrap.gitops.source import (
    GIT_NAMESPACE,
    GIT_SERVICE,
    GIT_SERVICE_PORT,
    READONLY_PASSWORD_SECRET,
    REPO,
)
from bootstrap.images import COMPONENT_IMAGE
from bootstrap.stages.base import CheckResult, StageContext, wait_namespaces_gone
from bootstrap.state import PlatformState
from stacks import redact
from stacks.errors import PermanentError, PlatformError, TransientError, WaitingError
from stacks.gitserver.auth import Access, credentials_document
from stacks.kube.diagnose import with_cause
from stacks.kube.health import health_of
from stacks.manifests import component_manifests

NAMESPACE = GIT_NAMESPACE
DEPLOYMENT = "platform-gitserver"
CREDENTIALS_SECRET = "platform-gitserver-credentials"  # noqa: S105 - a Secret name
WEBHOOK_SECRET = "platform-gitserver-webhook"  # noqa: S105 - a Secret name
PASSWORD_SECRET = "git-password"  # noqa: S105 - a file name in secrets/
FIELD_MANAGER = "platform-bootstrap"
INGRESS_PATIENCE = 90.0  # seconds the Ingress may take to answer once the pod is ready
LABELS = {"app.kubernetes.io/part-of": "platform"}


def deploys_gitserver(settings: Settings) -> bool:
    return not settings.git.url


def _read_file(path: str, what: str, setting: str) -> str:
    try:
        value = Path(path).expanduser().read_text().strip()
    except OSError as error:
        raise PermanentError(
            f"cannot read the {what} from {path}: {error.strerror}",
            hint=f"fix {setting} (see `platform config`)",
        ) from None
    if not value:
        raise PermanentError(f"the {what} file {path} is empty", hint=f"fix {setting}")
    redact.register(value)
    return value


def git_login(settings: Settings, state: PlatformState) -> GitLogin:
    """The read-write login: `git.password_file`, else the password this stage generated."""
    if settings.git.password_file:
        password = _read_file(settings.git.password_file, "git password", "git.password_file")
        return GitLogin(settings.git.username, password)
    if settings.git.url:
        raise PermanentError(
            "git.url names an existing git server but git.password_file is not set",
            hint="set git.username and git.password_file (PLATFORM_GIT_PASSWORD_FILE) to a "
            "user that may push",
        )
    password = (state.read_secret(PASSWORD_SECRET) or "").strip()
    if not password:
        raise PermanentError(
            "the platform's git password has not been created yet",
            hint="run `platform up` (the gitserver stage creates it)",
        )
    redact.register(password)
    return GitLogin(settings.git.username, password)


def _generated(state: PlatformState, filename: str) -> str:
    value = (state.read_secret(filename) or "").strip()
    if not value:
        value = secrets.token_urlsafe(24)
        state.write_secret(filename, value + "\n")
    redact.register(value)
    return value


def _http(
    method: str, url: str, login: GitLogin | None = None, body: Any = None
) -> tuple[int, str]:
    """(status, body text); a connection failure is a TransientError."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - http(s) URLs from settings
    if login is not None:
        request.add_header(*login.header().split(": ", 1))
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - http(s) only
            return int(response.status), response.read(4096).decode(errors="replace")
    except urllib.error.HTTPError as error:
        return int(error.code), error.read(4096).decode(errors="replace")
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise TransientError(
            f"failed to reach the git server at {url}: {reason}",
            hint="check that it runs and that git.url is right",
        ) from None


class GitServerStage:
    name = "gitserver"
    description = "git server answering; the gitops repository exists"
    requires: tuple[str, ...] = ("cluster",)

    def timeout(self, ctx: StageContext) -> float:
        return ctx.settings.stage_timeout

    def check(self, ctx: StageContext) -> CheckResult:
        try:
            url = laptop_repo_url(ctx.settings, ctx.kube)  # may open a port-forward
            heads = remote_heads(url, git_login(ctx.settings, ctx.state), timeout=10)
        except PlatformError as error:
            return CheckResult(False, str(error))
        state = "empty" if not heads else f"{len(heads)} refs"
        return CheckResult(True, f"{url} answers ({state})")

    def plan(self, ctx: StageContext) -> list[str]:
        url = people_repo_url(ctx.settings)  # a plan opens no port-forward
        if deploys_gitserver(ctx.settings):
            return [
                f"create the git credentials (users {ctx.settings.git.username}, "
                f"{ctx.settings.git.readonly_username}) and Secrets in {NAMESPACE}",
                f"deploy the git server ({COMPONENT_IMAGE}) to {NAMESPACE}",
                f"create the repository {url}",
            ]
        return [f"check the git server at {ctx.settings.git.url}", f"create the repository {url}"]

    def run(self, ctx: StageContext) -> str:
        settings = ctx.settings
        if deploys_gitserver(settings):
            self._deploy(ctx)
        login = git_login(settings, ctx.state)
        base = laptop_base_url(settings, ctx.kube)
        summary = self._ensure_repo(ctx, base, login)
        ctx.state.set_output("git_url", people_repo_url(settings))
        return summary

    def remove(self, ctx: StageContext) -> str:
        """`platform down` (engine existing): the namespace this stage deployed into.
        An external git server (git.url) and its repository are never touched."""
        if not deploys_gitserver(ctx.settings):
            return ""
        if ctx.kube().get("v1", "Namespace", NAMESPACE) is None:
            return ""
        ctx.kube().delete("v1", "Namespace", NAMESPACE)
        wait_namespaces_gone(ctx, [NAMESPACE])
        return f"deleted namespace {NAMESPACE} (the git server and its repositories)"

    # ---- the repository -----------------------------------------------------------------

    def _ensure_repo(self, ctx: StageContext, base: str, login: GitLogin) -> str:
        url = f"{base}/{REPO}.git"
        ctx.progress.step(self.name, f"checking the git server at {base}")
        status, _ = _http("GET", f"{base}/healthz")
        if status == 200:
            status, body = _http("POST", f"{base}/api/repos", login, {"name": REPO})
            if status in (200, 201):
                created = status == 201
                remote_heads(url, login, timeout=30)  # the login can read, too
                return f"repository {url} {'created' if created else 'exists'}"
            if status in (401, 403):
                raise PermanentError(
                    f"the git server at {base} refused to create the repository for user "
                    f"{login.username} (HTTP {status})",
                    hint="use a user with write access: git.username and git.password_file",
                )
            if status != 404:
                raise TransientError(
                    f"failed to create the repository {url}: HTTP {status} {body.strip()[:200]}"
                )
        # Not the project's server (or no /api/repos): ask git itself.
        try:
            heads = remote_heads(url, login, timeout=30)
        except RepoNotFound:
            ctx.progress.note(
                self.name,
                f"{base} is not the platform's git server and has no repository {REPO} yet: "
                "relying on the first push to create it (create it yourself if the server "
                "does not allow push-to-create)",
            )
            return f"{base} answers; {REPO} will be created by the first push"
        return f"repository {url} exists ({len(heads)} refs)"

    # ---- deploying the platform's own server --------------------------------------------

    def _deploy(self, ctx: StageContext) -> None:
        from bootstrap.stages.reconciler import webhook_secret

        settings = ctx.settings
        rw = _generated(ctx.state, PASSWORD_SECRET)
        ro = _generated(ctx.state, READONLY_PASSWORD_SECRET)
        if settings.git.username == settings.git.readonly_username:
            raise PermanentError(
                f"git.username and git.readonly_username are both {settings.git.username!r}",
                hint="give the read-only user another name",
            )
        document = credentials_document(
            {
                settings.git.username: (rw, Access.WRITE),
                settings.git.readonly_username: (ro, Access.READ),
            }
        )
        objects = component_manifests(
            "gitserver", {"COMPONENT_IMAGE": COMPONENT_IMAGE, "DOMAIN": settings.domain}
        )
        client = ctx.kube()
        namespaces = [o for o in objects if o["kind"] == "Namespace"]
        rest = [o for o in objects if o["kind"] != "Namespace"]
        generated = [
            _secret(CREDENTIALS_SECRET, "credentials.yaml", document),
            _secret(WEBHOOK_SECRET, "secret", webhook_secret(ctx)),
        ]
        ctx.progress.step(self.name, f"applying the git server to {NAMESPACE}")
        for obj in [*namespaces, *generated, *rest]:
            ctx.checkpoint()
            client.apply(obj, FIELD_MANAGER, force=True)
        ctx.log.info("applied %d git server objects to %s", len(objects) + 2, NAMESPACE)
        live = client.get("apps/v1", "Deployment", DEPLOYMENT, NAMESPACE) or {}
        health = health_of(live)
        if health is None or not health.healthy:
            state = health.message if health else "not created yet"
            raise WaitingError(
                with_cause(
                    f"waiting for Deployment '{NAMESPACE}/{DEPLOYMENT}': {state}", client, live
                ),
                retry_after=2.0,
            )
        self._wait_ingress(ctx)

    def _wait_ingress(self, ctx: StageContext) -> None:
        base = laptop_base_url(ctx.settings, ctx.kube)
        since = ctx.facts.setdefault("gitserver_ingress_since", time.monotonic())
        assert isinstance(since, float)
        try:
            status, _ = _http("GET", f"{base}/healthz")
        except TransientError as error:
            status, cause = 0, str(error)
            if git_through_port_forward(ctx.settings):
                problem = forward_problem(NAMESPACE, GIT_SERVICE, GIT_SERVICE_PORT)
                cause += f" (port-forward: {problem})" if problem else ""
        else:
            cause = f"HTTP {status}"
        if status == 200:
            return
        if time.monotonic() - since > INGRESS_PATIENCE:
            if git_through_port_forward(ctx.settings):
                raise PermanentError(
                    f"the git server runs but a port-forward to Service "
                    f"'{NAMESPACE}/{GIT_SERVICE}' ({base}) does not reach it ({cause})",
                    hint=f"check its pod (kubectl -n {NAMESPACE} get pods,events), or set "
                    "git.url to a git server this machine can reach",
                )
            raise PermanentError(
                f"the git server runs but {base} does not reach it ({cause})",
                hint=f"git.{ctx.settings.domain} must resolve to this machine and reach the "
                "cluster's ingress (k3d maps the HTTP port); on another cluster, set "
                "git.access=port-forward or git.url to a git server this machine can reach",
            )
        raise WaitingError(f"waiting for {base} to answer: {cause}", retry_after=2.0)


def _secret(name: str, key: str, value: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": LABELS},
        "data": {key: base64.b64encode(value.encode()).decode()},
    }
