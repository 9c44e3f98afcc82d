"""The desired-state loader: what an Application wants, what it owned, what is there.

    credentials -> fetch -> files -> render -> normalize -> inventory -> live

`Loader` holds each step once, and both readers use it: the controller (each reconcile,
with its per-app memory around the steps: a fetch shared with other Applications, the
render kept by the path's tree id, live state from the watch caches) and `platform diff`
(`Loader.load`, the whole chain at once, live state from the API server). Reading live
state has one rule for both: absent (NotFound) is None, Forbidden is left out (unknown:
never pruned, and the apply says why), and any other error is raised, never taken for
"absent".

A step that cannot go on raises `ReconcileFailed` (reason, message, stalled), which the
controller turns into conditions and `platform diff` into its error.

Called by stacks.reconciler.controller and stacks.reconciler.inspect.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, Protocol, TypeVar

from stacks.errors import PlatformError
from stacks.kube.errors import Forbidden, NotFound
from stacks.kube.objects import KubeObject, ObjectRef
from stacks.reconciler.api import AppSpec
from stacks.reconciler.plan import Desired, InventoryEntry, Live, normalize
from stacks.reconciler.render import LIMITS, render
from stacks.reconciler.source import (
    Credentials,
    GitCache,
    SourceFile,
    read_credentials_file,
    redact_url,
    secret_credentials,
)
from stacks.reconciler.sources.charts import ChartFetchError, ChartNotFound
from stacks.reconciler.sources.preload import configmap_lookup
from stacks.reconciler.sources.renderer import (
    DIRECTORY,
    RenderedFile,
    Renderer,
    RenderSettings,
    kind_of,
)
from stacks.reconciler.sources.repos import SELECTOR as REPO_SELECTOR
from stacks.reconciler.sources.repos import RepoAccess, access_for
from stacks.reconciler.sources.run import ToolFailed, ToolOutputTooLarge, ToolTimeout
from stacks.reconciler.sources.spec import digest
from stacks.reconciler.status import InventoryUnreadable, read_inventory

T = TypeVar("T")

if TYPE_CHECKING:
    from stacks.kube.cache import RefKey


class ReconcileFailed(PlatformError):
    def __init__(
        self, reason: str, message: str, stalled: bool, retry: float | None = None
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.stalled = stalled
        self.retry = retry


class LoaderClient(Protocol):
    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> KubeObject | None: ...
    def get_ref(self, ref: ObjectRef) -> KubeObject | None: ...
    def resource(self, api_version: str, kind: str) -> Any: ...
    def list_objects(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> list[KubeObject]: ...


@dataclass
class DesiredState:
    """One Application's desired state against what it recorded and what is live."""

    revision: str
    desired: list[Desired]
    inventory: list[InventoryEntry]
    live: dict[RefKey, Live | None]
    objects: dict[RefKey, KubeObject | None]


class Loader:
    def __init__(
        self,
        client: LoaderClient,
        git: GitCache,
        credentials_file: Path | None = None,
        settings: RenderSettings | None = None,
        chart_namespace: str | None = None,
    ) -> None:
        self.client = client
        # Where the offline bundle's charts are preloaded (the reconciler's namespace);
        # None: no preloads are looked for.
        self.chart_namespace = chart_namespace
        self.git = git
        self.credentials_file = credentials_file
        self.settings = settings or RenderSettings.from_env()
        # Helm and Kustomize renders work in scratch beside the git cache (the
        # reconciler's cache volume); made on first use, so plain manifests need none.
        self._renderer: Renderer | None = None
        self._kinds: dict[tuple[str, str], str] = {}  # (url, path tree id) -> tool

    @property
    def renderer(self) -> Renderer:
        if self._renderer is None:
            preload = (
                configmap_lookup(self.client, self.chart_namespace)
                if self.chart_namespace
                else None
            )
            self._renderer = Renderer(self.git, self.git.root / ".render", self.settings, preload)
            self._renderer.kube_version = self._kube_version()
        return self._renderer

    def _kube_version(self) -> str:
        """The API server's version for `helm template --kube-version` (asked once; ""
        when it cannot be read: helm's own default then)."""
        ask = getattr(self.client, "server_version", None)
        if ask is None:
            return ""
        try:
            return str(ask().get("gitVersion") or "")
        except PlatformError:
            return ""

    def credentials(self, spec: AppSpec) -> Credentials | None:
        if spec.source.secret_name:
            secret = self.client.get("v1", "Secret", spec.source.secret_name, spec.key.namespace)
            if secret is None:
                raise ReconcileFailed(
                    "CredentialsMissing",
                    f"the git credentials Secret '{spec.key.namespace}/{spec.source.secret_name}' does not exist",
                    stalled=True,
                )
            return secret_credentials(secret.get("data") or {})
        if self.credentials_file is not None:
            return read_credentials_file(self.credentials_file, spec.source.repo_url)
        return None

    def fetch(self, spec: AppSpec, since: float | None = None) -> str:
        """The commit of the spec's target revision (GitCache.fetch: `since` lets a
        fetch of the same repository that started since then serve this one)."""
        if spec.source.chart:
            # A chart repository is no git repository: its "revision" is the chart's
            # version (read from the index only when targetRevision leaves it open).
            return self._tool_step(
                lambda: self.renderer.charts.resolve(
                    spec.source.repo_url,
                    spec.source.chart,
                    spec.source.target_revision,
                    lambda: self.repo_access(spec),
                )
            )
        return self.git.fetch(
            spec.source.repo_url, spec.source.target_revision, self.credentials(spec), since=since
        )

    def tree(self, spec: AppSpec, revision: str) -> str | None:
        """What the render depends on at `revision`, as one string (None: the path is
        not a directory there): the path's tree id for plain manifests; for Helm and
        Kustomize the whole repository's tree id (a kustomization's `../base` and a
        chart's value files may be anywhere in it) and a digest of the spec's options,
        so a change to either renders again."""
        src = spec.source
        if src.chart:
            return f"chart:{digest(src.repo_url, src.chart, revision, src.helm, spec.key.name)}"
        tree = self.git.tree_ids(src.repo_url, revision, [src.path]).get(src.path)
        if tree is None:
            return None
        kind = self.kind(spec, revision, tree)
        if kind == DIRECTORY:
            return tree
        root = self.git.tree_ids(src.repo_url, revision, ["."]).get(".") or revision
        return f"{kind}:{root}:{digest(src.path, src.helm, src.kustomize, spec.key.name)}"

    def kind(self, spec: AppSpec, revision: str, tree: str | None = None) -> str:
        """The tool the spec's source needs (sources/renderer.py: Argo CD's detection),
        remembered by the path's tree id, since the same tree holds the same files."""
        src = spec.source
        if src.chart or src.helm is not None or src.kustomize is not None:
            return kind_of(src.chart, src.helm, src.kustomize, [])
        if tree is None:
            tree = self.git.tree_ids(src.repo_url, revision, [src.path]).get(src.path)
        key = (src.repo_url, tree or revision)
        found = self._kinds.get(key)
        if found is None:
            names = self.git.names(src.repo_url, revision, src.path)
            found = kind_of("", None, None, names)
            if len(self._kinds) > 10_000:
                self._kinds.clear()
            self._kinds[key] = found
        return found

    def repo_access(self, spec: AppSpec) -> RepoAccess:
        """Credentials for a chart repository: spec.source.secretRef, else the
        label-selected repository Secrets of the Application's namespace."""
        if spec.source.secret_name:
            creds = self.credentials(spec)
            return RepoAccess(creds.username, creds.password) if creds else RepoAccess()
        try:
            secrets = self.client.list_objects(
                "v1", "Secret", spec.key.namespace, label_selector=REPO_SELECTOR
            )
        except Forbidden:
            secrets = []  # anonymous, as without Secrets; a refusal names the fix
        return access_for(spec.source.repo_url, secrets)

    @staticmethod
    def _tool_step(step: Callable[[], T]) -> T:
        """Run a Helm/Kustomize step; its failure fails only this Application, and says
        that nothing was applied or pruned."""
        try:
            return step()
        except (ToolFailed, ToolOutputTooLarge, ChartNotFound) as error:
            hint = f" ({error.hint})" if error.hint else ""
            raise ReconcileFailed("RenderFailed", f"{error}{hint}", stalled=True) from error
        except (ToolTimeout, ChartFetchError) as error:
            message = str(error)
            if "nothing was applied" not in message:
                message += "; nothing was applied or pruned"
            raise ReconcileFailed("RenderFailed", message, stalled=False) from error

    def files(self, spec: AppSpec, revision: str, tree: str | None = None) -> list[SourceFile]:
        """The files to render: from git for plain manifests, or what helm or kustomize
        printed (RenderedFile) for a chart or kustomization."""
        src = spec.source
        if src.chart:
            return self._tool_step(
                lambda: self.renderer.render_chart(
                    src.repo_url,
                    src.chart,
                    revision,
                    lambda: self.repo_access(spec),
                    release=spec.key.name,
                    namespace=spec.namespace,
                    options=src.helm,
                )
            )
        if tree is not None and ":" in tree:  # tree() said: not plain manifests
            tree = None
        kind = self.kind(spec, revision)
        if kind != DIRECTORY:
            if self.git.tree_ids(src.repo_url, revision, [src.path]).get(src.path) is None:
                self._missing(spec, revision)
            return self._tool_step(
                lambda: self.renderer.render_git(
                    kind,
                    src.repo_url,
                    revision,
                    src.path,
                    release=spec.key.name,
                    namespace=spec.namespace,
                    helm_options=src.helm,
                    kustomize_options=src.kustomize,
                )
            )
        files = self.git.files(
            spec.source.repo_url, revision, spec.source.path, spec.source.recurse, tree=tree
        )
        if files is None:
            self._missing(spec, revision)
        return files or []

    def _missing(self, spec: AppSpec, revision: str) -> NoReturn:
        why = self.git.explain_missing(spec.source.repo_url, revision, spec.source.path)
        raise ReconcileFailed(
            "PathNotFound",
            f"path '{spec.source.path}' does not exist in {redact_url(spec.source.repo_url)} at {revision[:12]}"
            + (f" ({why})" if why else "")
            + "; nothing was applied or pruned",
            stalled=True,
        )

    def render(self, spec: AppSpec, files: Iterable[SourceFile]) -> list[Desired]:
        """The files' objects, rendered and normalized (namespace, tracking, hashes)."""
        files = list(files)
        # A tool's output is one stream: bounded as a whole render, not as one file.
        tool = any(isinstance(f, RenderedFile) for f in files)
        limits = replace(LIMITS, file_bytes=LIMITS.total_bytes) if tool else LIMITS
        return normalize(
            render(((f.path, f.content) for f in files), limits),
            spec.key,
            spec.namespace,
            self.scope,
        )

    def scope(self, api_version: str, kind: str) -> bool | None:
        try:
            return bool(self.client.resource(api_version, kind).namespaced)
        except NotFound:
            return None

    @staticmethod
    def inventory(status: Mapping[str, Any]) -> list[InventoryEntry]:
        """The inventory recorded in `status`; never guessed when it cannot be read."""
        try:
            return read_inventory(status)
        except InventoryUnreadable as error:
            # Never guess: an empty inventory would silently stop pruning what it held.
            raise ReconcileFailed(
                "InventoryUnreadable",
                f"{error}; nothing was applied or pruned. To start a new inventory (objects "
                "removed from git before now are then left in place), remove the field: "
                "kubectl patch application NAME --subresource=status --type=json "
                '-p \'[{"op":"remove","path":"/status/inventoryCompressed"}]\'',
                stalled=True,
            ) from error

    def live(
        self,
        refs: Iterable[ObjectRef],
        get: Callable[[ObjectRef], KubeObject | None] | None = None,
    ) -> tuple[dict[RefKey, Live | None], dict[RefKey, KubeObject | None]]:
        """Live state of `refs`, read with `get` (default: the API server). Absent is
        None; Forbidden is left out (unknown: the apply says why; never pruned); any
        other error is raised."""
        read = get or self._get
        live: dict[RefKey, Live | None] = {}
        objects: dict[RefKey, KubeObject | None] = {}
        for ref in refs:
            try:
                found = read(ref)
            except NotFound:
                found = None
            except Forbidden:
                continue
            objects[ref.key] = found
            live[ref.key] = Live.of(found) if found is not None else None
        return live, objects

    def _get(self, ref: ObjectRef) -> KubeObject | None:
        return self.client.get_ref(ref) if ref.version else None

    def load(self, spec: AppSpec, status: Mapping[str, Any]) -> DesiredState:
        """The whole chain at once, without memory (`platform diff`)."""
        revision = self.fetch(spec)
        desired = self.render(spec, self.files(spec, revision))
        inventory = self.inventory(status)
        live, objects = self.live(refs_of(desired, inventory))
        return DesiredState(revision, desired, inventory, live, objects)


def refs_of(desired: Sequence[Desired], inventory: Sequence[InventoryEntry]) -> list[ObjectRef]:
    """The objects to read live: every desired one, then every recorded one."""
    return [d.ref for d in desired] + [e.ref for e in inventory]
