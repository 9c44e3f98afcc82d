"""The `existing` engine: install into a cluster the user already has (kubeconfig/context).

It never creates or deletes the cluster. `ensure` checks up front that the API answers,
that its version is supported and that the identity may do what the platform needs
(`required_rights`: install CRDs, RBAC and workloads, and port-forward when Vault or git
is reached that way), so a missing permission is one clear sentence before anything is
installed. `platform doctor` runs the same checks (bootstrap/stages/preflight.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bootstrap.config import Settings
from bootstrap.engines.base import StepReporter
from bootstrap.forwards import needs_port_forward
from bootstrap.state import PlatformState
from stacks.errors import PermanentError, PlatformError

if TYPE_CHECKING:
    from stacks.kube.client import KubeClient

MIN_MINOR = 27


@dataclass(frozen=True)
class Right:
    """One thing the kubeconfig's identity must be allowed to do, cluster-wide."""

    verb: str
    group: str
    resource: str
    subresource: str = ""

    def __str__(self) -> str:
        resource = self.resource + (f"/{self.subresource}" if self.subresource else "")
        return f"{self.verb} {resource}" + (f".{self.group}" if self.group else "")


# What the platform installs, checked with SelfSubjectAccessReview before anything else.
INSTALL_RIGHTS: tuple[Right, ...] = (
    Right("create", "", "namespaces"),
    Right("create", "apiextensions.k8s.io", "customresourcedefinitions"),
    Right("create", "rbac.authorization.k8s.io", "clusterroles"),
    Right("create", "rbac.authorization.k8s.io", "clusterrolebindings"),
    Right("create", "apps", "deployments"),
    Right("create", "", "secrets"),
)
# Reaching the platform's Vault and git server through the API (bootstrap/forwards.py).
PORT_FORWARD_RIGHT = Right("create", "", "pods", "portforward")


def required_rights(settings: Settings) -> tuple[Right, ...]:
    """The rights `platform up` with these settings needs."""
    return INSTALL_RIGHTS + ((PORT_FORWARD_RIGHT,) if needs_port_forward(settings) else ())


def missing_rights(client: KubeClient, rights: tuple[Right, ...]) -> list[Right]:
    return [
        right
        for right in rights
        if not client.self_subject_access(
            right.verb, right.group, right.resource, subresource=right.subresource
        )
    ]


def rights_error(missing: list[Right]) -> PermanentError:
    return PermanentError(
        f"the kubeconfig's identity may not {', '.join(map(str, missing))} in this cluster",
        hint="use a cluster-admin context (--context) or ask the cluster's admin for these rights",
    )


def supported_version(client: KubeClient) -> str:
    """The API server's version, or a PermanentError when it is older than the platform needs."""
    version = client.server_version()
    git_version = str(version.get("gitVersion", "?"))
    minor = int("".join(ch for ch in str(version.get("minor", "0")) if ch.isdigit()) or 0)
    if minor < MIN_MINOR:
        raise PermanentError(
            f"the cluster runs Kubernetes {git_version}; the platform needs 1.{MIN_MINOR} or newer",
            hint="upgrade the cluster or use --engine k3d",
        )
    return git_version


class ExistingEngine:
    name = "existing"

    def __init__(self, settings: Settings, state: PlatformState) -> None:
        self.settings = settings
        self.state = state
        self._client: KubeClient | None = None

    def kubeconfig_path(self) -> str:
        if self.settings.kubeconfig:
            return str(Path(self.settings.kubeconfig).expanduser())
        from_env = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
        return from_env or str(Path.home() / ".kube" / "config")

    def context(self) -> str | None:
        return self.settings.context or None

    def client(self) -> KubeClient:
        if self._client is None:
            from bootstrap.engines import kubeconfig
            from stacks.kube.client import KubeClient

            path, context = self.kubeconfig_path(), self.context()
            self._client = kubeconfig.load(path, lambda: KubeClient.from_kubeconfig(path, context))
        return self._client

    def plan(self) -> list[str]:
        where = self.kubeconfig_path() + (f" (context {self.context()})" if self.context() else "")
        return [f"use the existing cluster from {where}; check its version and permissions"]

    def is_ready(self) -> tuple[bool, str]:
        try:
            version = self.client().server_version()
        except PlatformError as error:
            return False, str(error)
        return True, f"Kubernetes {version.get('gitVersion', '?')} at {self.client().host}"

    def ensure(self, step: StepReporter) -> str:
        step(f"connecting to {self.kubeconfig_path()}")
        client = self.client()
        git_version = supported_version(client)
        step("checking permissions")
        missing = missing_rights(client, required_rights(self.settings))
        if missing:
            raise rights_error(missing)
        return f"Kubernetes {git_version} at {client.host}"

    def destroy(self, step: StepReporter) -> str:
        return "left the existing cluster in place"

    def owns_cluster(self) -> bool:
        return False
