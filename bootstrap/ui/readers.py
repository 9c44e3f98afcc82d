"""What the dashboard's pages show, read the way the CLI reads it.

    stages()            state.json's stage records, in the registry's order (`platform status`)
    cluster()           does the cluster answer (the engine's check, cached for a few seconds)
    rows()              one AppRow per Application (stacks/reconciler/inspect.py's list_apps)
                        from the live feed's cache: no LIST per page
    problem(app)        why an Application is not ready, down to the cause in the cluster
                        (bootstrap/stages/appwait.py: what `platform status` prints)
    places()            where things are (the non-secret outputs `platform up` recorded) and
                        which command prints each credential; never a credential
    detail(ns, name)    one Application: resources, conditions, events, last handled sync
    diff(ns, name)      what `platform diff` computes (inspect.diff_app), logged in to git with
                        the read-only login the cluster pulls with (git_credentials())
    sync(ns, name)      what `platform sync --no-wait` does (inspect.request_sync)
    repository()        the last commits of the platform's repository, which Applications
                        each changed and whether they applied it (the reconciler's GitCache
                        fetches from where `platform git clone` does, with its login)
    vault()             Vault's seal state (stacks/vault/api.py through bootstrap.vault_access)
    certificates()      Certificates' issuer and expiry, and the local CA's

Values in, values out: no HTML here. Called by bootstrap/ui/site.py.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from bootstrap.config import Settings
from bootstrap.state import PlatformState
from stacks.errors import PlatformError, trim
from stacks.kube.objects import KubeObject, condition_of

if TYPE_CHECKING:
    from bootstrap.engines.base import Engine
    from bootstrap.ui.live import AppFeed
    from stacks.kube.client import KubeClient
    from stacks.reconciler.inspect import AppRow, ObjectDiff

log = logging.getLogger(__name__)

CLUSTER_CHECK_SECONDS = 3.0
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
MAX_WORKLOADS = 200  # status.resources entries looked at for pods
MAX_PODS = 20  # pods shown under one workload
COMMITS = 15
GIT_TIMEOUT = 20.0
# Which command prints each credential: the page names the command, never the value.
CREDENTIAL_COMMANDS = (
    ("git (read-write user)", "platform git credentials"),
    ("Vault (userpass login)", "platform vault credentials"),
    ("Vault root token", "platform vault credentials --show-root-token"),
)
PLACES = (
    ("git_url", "Git repository"),
    ("vault_address", "Vault"),
    ("demo_url", "Demo app"),
    ("ca_certificate", "Local CA certificate"),
    ("kubeconfig", "Kubeconfig"),
)


@dataclass(frozen=True)
class Stage:
    name: str
    outcome: str
    seconds: float | None
    detail: str


@dataclass(frozen=True)
class Commit:
    sha: str
    when: str
    author: str
    subject: str
    apps: tuple[tuple[str, bool], ...]  # (Application, applied?)


@dataclass(frozen=True)
class Repository:
    url: str
    commits: tuple[Commit, ...] = ()
    error: str = ""


@dataclass(frozen=True)
class Certificate:
    namespace: str
    name: str
    issuer: str
    not_after: str
    renewal: str
    ready: str
    message: str


@dataclass
class Detail:
    obj: KubeObject
    events: list[dict[str, Any]] = field(default_factory=list)
    events_error: str = ""
    # (kind, namespace, name) of a workload -> its pods: (name, health, message)
    pods: dict[tuple[str, str, str], list[tuple[str, str, str]]] = field(default_factory=dict)


def last_written(obj: KubeObject) -> str:
    """When the reconciler last wrote the Application's status (its managedFields
    entry for the status subresource); '' when unknown."""
    times = [
        str(entry.get("time") or "")
        for entry in (obj.get("metadata") or {}).get("managedFields") or []
        if entry.get("subresource") == "status"
    ]
    return max(times, default="")


class Platform:
    """One platform's state dir, its cluster (when it answers) and the live feed."""

    def __init__(
        self,
        settings: Settings,
        state: PlatformState,
        engine: Engine,
        cache_dir: Path,
    ) -> None:
        self.settings = settings
        self.state = state
        self.engine = engine
        self.cache_dir = cache_dir
        self.feed: AppFeed | None = None
        self._client: KubeClient | None = None
        self._checked = (0.0, False, "not checked yet")
        self._lock = threading.Lock()
        self._vault_address = ""
        self._credentials: Path | None = None

    # ---- the cluster ------------------------------------------------------------------

    def exists(self) -> bool:
        return self.state.exists()

    def cluster(self) -> tuple[bool, str]:
        """(answers, one line): the engine's own check, at most every few seconds."""
        with self._lock:
            when, ready, detail = self._checked
            if time.monotonic() - when < CLUSTER_CHECK_SECONDS:
                return ready, detail
        recorded = self.state.load()["stages"].get("cluster", {}).get("outcome")
        if recorded not in ("done", "verified"):
            ready, detail = False, "not created yet (the `cluster` stage has not run)"
        else:
            try:
                ready, detail = self.engine.is_ready()
            except PlatformError as error:
                ready, detail = False, str(error)
        with self._lock:
            self._checked = (time.monotonic(), ready, detail)
        return ready, detail

    def client(self) -> KubeClient:
        if self._client is None:
            self._client = self.engine.client()
        return self._client

    def stages(self) -> list[Stage]:
        from bootstrap.stages.registry import all_stages

        recorded = self.state.load()["stages"]
        stages = []
        for stage in all_stages():
            record = recorded.get(stage.name, {})
            seconds = record.get("seconds")
            stages.append(
                Stage(
                    stage.name,
                    str(record.get("outcome", "pending")),
                    float(seconds) if isinstance(seconds, int | float) else None,
                    str(record.get("error") or record.get("summary") or ""),
                )
            )
        return stages

    def places(self) -> list[tuple[str, str]]:
        outputs = self.state.outputs()
        return [(label, str(outputs[key])) for key, label in PLACES if outputs.get(key)]

    # ---- Applications -----------------------------------------------------------------

    def apps(self) -> list[KubeObject]:
        return self.feed.apps() if self.feed is not None else []

    def feed_problem(self) -> str:
        """Why the Application list may be missing or stale ('' when it is current)."""
        if self.feed is None:
            return "not watching Applications"
        cache = self.feed.cache
        if cache.failing:
            return f"cannot watch Applications: {cache.failing}"
        if not cache.listed.is_set():
            return cache.unusable or "waiting for the Application list"
        return ""

    def rows(self, objects: list[KubeObject] | None = None) -> list[AppRow]:
        from stacks.reconciler.inspect import list_apps

        listed = self.apps() if objects is None else objects
        # list_apps only lists: handing it the cached objects reuses its rows as they are.
        return list_apps(cast(Any, _Listed(listed)))

    def problem(self, app: KubeObject, name: str) -> str:
        from bootstrap.stages.appwait import app_problem, explained

        text = app_problem(app, name)
        if not text:
            return ""
        try:
            return explained(self.client(), app, text)
        except PlatformError:
            return text

    def get(self, namespace: str, name: str) -> KubeObject | None:
        return self.feed.get(namespace, name) if self.feed is not None else None

    def detail(self, namespace: str, name: str) -> Detail | None:
        obj = self.get(namespace, name)
        if obj is None:
            return None
        detail = Detail(obj)
        try:
            info = self.client().resource("v1", "Event")
            answer = self.client().request(
                "GET",
                info.path(namespace),
                query={
                    "fieldSelector": f"involvedObject.kind=Application,involvedObject.name={name}"
                },
                what=f"events of Application '{namespace}/{name}'",
            )
            items = list(answer.get("items") or [])
            items.sort(key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))
            detail.events = items[-20:]
        except PlatformError as error:
            detail.events_error = str(error)
        detail.pods = self._pods(obj)
        return detail

    def _pods(self, app: KubeObject) -> dict[tuple[str, str, str], list[tuple[str, str, str]]]:
        """The pods under each workload the Application manages (the tree's lower level),
        selected by the workload's own selector, with the health gitops-engine gives a
        pod (stacks/kube/health.py). A workload that cannot be read has no children."""
        from stacks.kube.health import pod_health

        found: dict[tuple[str, str, str], list[tuple[str, str, str]]] = {}
        for resource in ((app.get("status") or {}).get("resources") or [])[:MAX_WORKLOADS]:
            kind, namespace = str(resource.get("kind", "")), str(resource.get("namespace") or "")
            if resource.get("group") != "apps" or kind not in WORKLOAD_KINDS or not namespace:
                continue
            name = str(resource.get("name", ""))
            try:
                workload = self.client().get("apps/v1", kind, name, namespace)
                labels = (((workload or {}).get("spec") or {}).get("selector") or {}).get(
                    "matchLabels"
                ) or {}
                if not labels:
                    continue
                selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
                pods = self.client().list_objects("v1", "Pod", namespace, selector)
            except PlatformError:
                continue
            found[(kind, namespace, name)] = [
                (
                    str((pod.get("metadata") or {}).get("name", "")),
                    str(health.status),
                    health.message,
                )
                for pod in pods[:MAX_PODS]
                for health in [pod_health(pod)]
            ]
        return found

    def git_credentials(self) -> Path | None:
        """A git-credentials file with the read-only login the cluster pulls with (the
        reconciler stage's line, bootstrap/gitops/source.py), in a private directory of
        this process (0700, the file 0600) removed at close; None when there is none."""
        if self._credentials is not None:
            return self._credentials
        from bootstrap.gitops.source import write_git_credentials

        folder = Path(tempfile.mkdtemp(prefix="platform-ui-"))  # 0700
        path = write_git_credentials(self.settings, self.state, folder)
        if path is None:
            log.debug("no git login for the dashboard")
            shutil.rmtree(folder, ignore_errors=True)
            return None
        self._credentials = path
        return path

    def diff(self, namespace: str, name: str) -> list[ObjectDiff]:
        from stacks.reconciler.inspect import diff_app, find_app

        obj = find_app(cast(Any, self.client()), name, namespace)
        return diff_app(
            cast(Any, self.client()), obj, self.cache_dir / "diff-git", self.git_credentials()
        )

    def sync(self, namespace: str, name: str) -> str:
        from stacks.reconciler.api import AppKey
        from stacks.reconciler.inspect import find_app, request_sync

        client = cast(Any, self.client())
        key = AppKey.of(find_app(client, name, namespace))
        return request_sync(client, key)

    # ---- the repository ---------------------------------------------------------------

    def repository(self) -> Repository:
        """The last commits of the repository the root Application syncs from, fetched
        the way `platform git clone` reaches it from this machine (its URL here, which
        may be a port-forward, and the read-write login): the Applications name the
        URL the cluster uses, which this machine may not reach."""
        from bootstrap.gitops.repo import laptop_repo_url
        from bootstrap.stages.gitserver import git_login
        from stacks.reconciler.api import AppSpec
        from stacks.reconciler.source import Credentials, GitCache, redact_url

        specs = []
        for obj in self.apps():
            try:
                specs.append((obj, AppSpec.parse(obj)))
            except PlatformError:
                continue
        root = next((s for o, s in specs if s.key.name == "root"), None) or (
            specs[0][1] if specs else None
        )
        if root is None:
            return Repository(self.state.outputs().get("git_url", ""), error="no Application yet")
        url = root.source.repo_url
        cache = GitCache(self.cache_dir / "repo-git")
        here = url
        try:
            here = laptop_repo_url(self.settings, self.client)
            login = git_login(self.settings, self.state)
            head = cache.fetch(here, "HEAD", Credentials(login.username, login.password))
            log_text = _git(
                cache.repo_dir(here),
                "log",
                f"-n{COMMITS}",
                "--no-renames",
                "--name-only",
                "--format=%x1e%H%x1f%cI%x1f%an%x1f%s",
                head,
            )
        except PlatformError as error:
            return Repository(redact_url(here), error=str(error))
        same_repo = [(o, s) for o, s in specs if s.source.repo_url == url]
        applied: dict[str, set[str]] = {}
        for obj, _ in same_repo:
            revision = str((obj.get("status") or {}).get("lastAppliedRevision") or "")
            if revision and revision not in applied:
                try:
                    applied[revision] = set(
                        _git(cache.repo_dir(here), "rev-list", "-n500", revision).split()
                    )
                except PlatformError:
                    applied[revision] = set()
        commits = []
        for record in log_text.split("\x1e"):
            if not record.strip():
                continue
            header, _, names = record.partition("\n")
            sha, when, author, subject = [*header.split("\x1f"), "", "", ""][:4]
            files = [n for n in names.splitlines() if n.strip()]
            touched = []
            for obj, spec in same_repo:
                if any(_in_path(f, spec.source.path, spec.source.recurse) for f in files):
                    revision = str((obj.get("status") or {}).get("lastAppliedRevision") or "")
                    touched.append((spec.key.name, sha in applied.get(revision, set())))
            commits.append(Commit(sha, when, author, subject, tuple(sorted(touched))))
        return Repository(redact_url(here), tuple(commits))

    # ---- Vault and certificates -------------------------------------------------------

    def vault(self) -> tuple[str, str]:
        """(address, seal state in words); the address is '' when it cannot be found."""
        from bootstrap.vault_access import vault_address
        from stacks.vault.api import VaultApi

        try:
            if not self._vault_address:
                self._vault_address = vault_address(self.settings, self.client)
            return self._vault_address, VaultApi(self._vault_address).status().describe()
        except PlatformError as error:
            return self._vault_address, f"cannot read the seal state: {error}"

    def certificates(self) -> tuple[list[Certificate], str]:
        """Every Certificate and the local CA's own line; an error text when unreadable."""
        from stacks.certs.policy import API_VERSION

        certs = []
        try:
            for obj in self.client().list_objects(API_VERSION, "Certificate"):
                meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
                status = obj.get("status") or {}
                issuer = spec.get("issuerRef") or {}
                ready = condition_of(obj, "Ready") or {}
                certs.append(
                    Certificate(
                        str(meta.get("namespace", "")),
                        str(meta.get("name", "")),
                        f"{issuer.get('kind', 'Issuer')} {issuer.get('name', '')}",
                        str(status.get("notAfter") or ""),
                        str(status.get("renewalTime") or ""),
                        str(ready.get("status") or "Unknown"),
                        str(ready.get("message") or ""),
                    )
                )
        except PlatformError as error:
            return certs, str(error)
        return sorted(certs, key=lambda c: (c.namespace, c.name)), ""

    def ca(self) -> tuple[str, str, str] | None:
        """(subject, issuer, notAfter) of the CA certificate in the state dir, if any."""
        from cryptography import x509

        path = Path(str(self.state.outputs().get("ca_certificate") or self.state.root / "ca.crt"))
        try:
            cert = x509.load_pem_x509_certificate(path.read_bytes())
        except (OSError, ValueError):
            return None
        return (
            cert.subject.rfc4514_string(),
            cert.issuer.rfc4514_string(),
            cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        )

    def close(self) -> None:
        if self.feed is not None:
            self.feed.close()
        if self._credentials is not None:
            shutil.rmtree(self._credentials.parent, ignore_errors=True)
            self._credentials = None


class _Listed:
    """What list_apps needs of a client, answered from the feed's cache."""

    def __init__(self, objects: list[KubeObject]) -> None:
        self._objects = objects

    def list_objects(self, *args: Any, **kwargs: Any) -> list[KubeObject]:
        return self._objects


def _in_path(file: str, path: str, recurse: bool) -> bool:
    base = path.strip("/")
    if base in ("", "."):
        return recurse or "/" not in file
    if not file.startswith(base + "/"):
        return False
    return recurse or "/" not in file[len(base) + 1 :]


def _git(repo: Path, *args: str) -> str:
    """A read-only git command in a local bare repository the GitCache fetched."""
    try:
        result = subprocess.run(
            ["git", "--git-dir", str(repo), *args],
            capture_output=True,
            timeout=GIT_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise PlatformError(f"failed to run git {args[0]}: {error}") from error
    if result.returncode != 0:
        raise PlatformError(
            f"failed to run git {args[0]}: {trim(result.stderr.decode(errors='replace'), 300)}"
        )
    return result.stdout.decode(errors="replace")


def age(stamp: str, now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> str:
    """'3m ago' for an RFC 3339 time; '' when it does not parse."""
    try:
        when = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return ""
    seconds = int((now() - when).total_seconds())
    if seconds < 0:
        return "in " + _span(-seconds)
    return _span(seconds) + " ago"


def _span(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
