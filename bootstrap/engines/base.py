"""The engine seam: what every source of clusters provides to the stages.

Implemented by `k3d.K3dEngine` and `existing.ExistingEngine`; chosen by
`choose.engine_for`. Imports neither, so the engines import this and nothing imports back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from stacks.kube.client import KubeClient


class Engine(Protocol):
    name: str

    def kubeconfig_path(self) -> str:
        """The kubeconfig the platform uses (its own copy for k3d, the user's for existing)."""

    def context(self) -> str | None: ...

    def client(self) -> KubeClient:
        """An API client for the cluster; raises PermanentError when it cannot be reached."""

    def plan(self) -> list[str]:
        """What `ensure` would do, for --dry-run."""

    def is_ready(self) -> tuple[bool, str]:
        """Does the cluster exist and answer? (cheap; for checks and status)"""

    def ensure(self, step: StepReporter) -> str:
        """Create the cluster if needed and wait for it; return a summary."""

    def destroy(self, step: StepReporter) -> str:
        """Remove the cluster if the engine created it; never touch a cluster it did not."""

    def owns_cluster(self) -> bool:
        """True when `platform down` deletes the whole cluster (k3d)."""


class StepReporter(Protocol):
    def __call__(self, message: str) -> None: ...
