"""The `existing` engine: install into a cluster the user already has (kubeconfig/context).

It never creates or deletes the cluster. `ensure` checks up front that the API answers,
that its version is supported and that the identity may do what the platform needs, so a
missing permission is one clear sentence before anything is installed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from bootstrap.config import Settings
from bootstrap.engines.base import StepReporter
from bootstrap.state import PlatformState
from stacks.errors import PermanentError, PlatformError

if TYPE_CHECKING:
    from stacks.kube.client import KubeClient

MIN_MINOR = 27
# What the platform installs, checked with SelfSubjectAccessReview before anything else.
REQUIRED_ACCESS: tuple[tuple[str, str, str], ...] = (
    ("create", "", "namespaces"),
    ("create", "apiextensions.k8s.io", "customresourcedefinitions"),
    ("create", "rbac.authorization.k8s.io", "clusterroles"),
    ("create", "rbac.authorization.k8s.io", "clusterrolebindings"),
    ("create", "apps", "deployments"),
    ("create", "", "secrets"),
)


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
            from stacks.kube.client import KubeClient

            self._client = KubeClient.from_kubeconfig(self.kubeconfig_path(), self.context())
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
        version = client.server_version()
        git_version = str(version.get("gitVersion", "?"))
        minor = int("".join(ch for ch in str(version.get("minor", "0")) if ch.isdigit()) or 0)
        if minor < MIN_MINOR:
            raise PermanentError(
                f"the cluster runs Kubernetes {git_version}; the platform needs 1.{MIN_MINOR} or newer",
                hint="upgrade the cluster or use --engine k3d",
            )
        step("checking permissions")
        missing = [
            f"{verb} {resource}" + (f".{group}" if group else "")
            for verb, group, resource in REQUIRED_ACCESS
            if not client.self_subject_access(verb, group, resource)
        ]
        if missing:
            raise PermanentError(
                f"the kubeconfig's identity may not {', '.join(missing)} in this cluster",
                hint="use a cluster-admin context (--context) or ask the cluster's admin for these rights",
            )
        return f"Kubernetes {git_version} at {client.host}"

    def destroy(self, step: StepReporter) -> str:
        return "left the existing cluster in place"

    def owns_cluster(self) -> bool:
        return False
