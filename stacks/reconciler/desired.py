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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from stacks.errors import PlatformError
from stacks.kube.errors import Forbidden, NotFound
from stacks.kube.objects import KubeObject, ObjectRef
from stacks.reconciler.api import AppSpec
from stacks.reconciler.plan import Desired, InventoryEntry, Live, normalize
from stacks.reconciler.render import render
from stacks.reconciler.source import (
    Credentials,
    GitCache,
    SourceFile,
    read_credentials_file,
    redact_url,
    secret_credentials,
)
from stacks.reconciler.status import InventoryUnreadable, read_inventory

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
        self, client: LoaderClient, git: GitCache, credentials_file: Path | None = None
    ) -> None:
        self.client = client
        self.git = git
        self.credentials_file = credentials_file

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
        return self.git.fetch(
            spec.source.repo_url, spec.source.target_revision, self.credentials(spec), since=since
        )

    def tree(self, spec: AppSpec, revision: str) -> str | None:
        """The tree id of the spec's path at `revision` (None: not a directory there)."""
        return self.git.tree_ids(spec.source.repo_url, revision, [spec.source.path]).get(
            spec.source.path
        )

    def files(self, spec: AppSpec, revision: str, tree: str | None = None) -> list[SourceFile]:
        files = self.git.files(
            spec.source.repo_url, revision, spec.source.path, spec.source.recurse, tree=tree
        )
        if files is None:
            why = self.git.explain_missing(spec.source.repo_url, revision, spec.source.path)
            raise ReconcileFailed(
                "PathNotFound",
                f"path '{spec.source.path}' does not exist in {redact_url(spec.source.repo_url)} at {revision[:12]}"
                + (f" ({why})" if why else "")
                + "; nothing was applied or pruned",
                stalled=True,
            )
        return files

    def render(self, spec: AppSpec, files: Iterable[SourceFile]) -> list[Desired]:
        """The files' objects, rendered and normalized (namespace, tracking, hashes)."""
        return normalize(
            render((f.path, f.content) for f in files), spec.key, spec.namespace, self.scope
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
