"""Shared pieces of the Helm and Kustomize integration tests (issue 18): a reconciler
that runs the real testenv-built `helm` and `kustomize`, and Applications with any
source fields. Imported by test_kustomize.py, test_helm.py and bench/helm_bench.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stacks.kube.client import KubeClient
from stacks.reconciler.api import API_VERSION, KIND
from tests.integration.reconciler.conftest import Reconciler, start_reconciler
from tests.support import processes
from tests.support.binaries import require_binary
from tests.support.kwok import KwokCluster


@pytest.fixture
def tool_env() -> dict[str, str]:
    """The environment naming the real binaries (a missing one fails the test in CI)."""
    return {
        "PLATFORM_RECONCILER_HELM": str(require_binary("helm")),
        "PLATFORM_RECONCILER_KUSTOMIZE": str(require_binary("kustomize")),
    }


def start_tool_reconciler(
    cluster: KwokCluster, namespace: str, tmp_path: Path, env: dict[str, str]
) -> Reconciler:
    return start_reconciler(
        tmp_path,
        [
            f"--kubeconfig={cluster.kubeconfig}",
            f"--watch-namespace={namespace}",
            "--no-leader-elect",
            "--log-level=DEBUG",
        ],
        env=env,
    )


@pytest.fixture
def tool_reconciler(
    cluster: KwokCluster, crd: None, namespace: str, tmp_path: Path, tool_env: dict[str, str]
) -> Iterator[Reconciler]:
    running = start_tool_reconciler(cluster, namespace, tmp_path, tool_env)
    yield running
    processes.stop(running.process)
    if os.environ.get("SHOW_RECONCILER_LOG"):
        print(running.output()[-20000:])


def create_app(
    kube: KubeClient,
    namespace: str,
    name: str,
    source: dict[str, Any],
    *,
    automated: bool = True,
    destination: str | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "source": source,
        "destination": {"namespace": destination if destination is not None else namespace},
        "interval": "3m",
    }
    if automated:
        spec["syncPolicy"] = {"automated": {"prune": True, "selfHeal": True}}
    return kube.create(
        {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        }
    )


def patch_source(kube: KubeClient, namespace: str, name: str, source: dict[str, Any]) -> None:
    kube.merge_patch(API_VERSION, KIND, name, {"spec": {"source": source}}, namespace)


def health_status(app: dict[str, object]) -> str:
    """An Application's status.health.status ('' before the first report)."""
    status = app.get("status")
    health = status.get("health") if isinstance(status, dict) else None
    return str(health.get("status", "")) if isinstance(health, dict) else ""
