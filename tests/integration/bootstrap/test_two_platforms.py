"""Two platforms on one existing cluster would collide (fixed namespace names and the
root Application): the `cluster` stage of the second refuses at once, naming the first
and the fix, against the real kube-apiserver. The platform already there passes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bootstrap.state import PlatformState
from stacks.kube.client import KubeClient
from stacks.reconciler import install
from stacks.reconciler.api import API_VERSION, KIND
from tests.support.cli import run_platform
from tests.support.kwok import KwokCluster

pytestmark = pytest.mark.integration
MANAGER = "test-two-platforms"
CRD = "apiextensions.k8s.io/v1"


@pytest.fixture
def alpha_root(cluster: KwokCluster) -> Iterator[KubeClient]:
    """The root Application platform 'alpha' leaves in the cluster (with the CRD and
    namespace it needs); whatever this fixture created is removed afterwards, so the
    cluster, shared by the session, is left as found."""
    client = KubeClient.from_kubeconfig(str(cluster.kubeconfig))
    crds = [o for o in install.manifests("unused") if o["kind"] == "CustomResourceDefinition"]
    created_crds = [
        c
        for c in crds
        if client.get(CRD, "CustomResourceDefinition", c["metadata"]["name"]) is None
    ]
    had_namespace = client.get("v1", "Namespace", install.NAMESPACE) is not None
    try:
        for crd in created_crds:
            client.apply(crd, MANAGER)
        client.apply(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": install.NAMESPACE}},
            MANAGER,
        )
        root = install.root_application("root", "http://git.example/alpha.git", "registry/alpha")
        for _ in range(100):  # the CRD is served a moment after it is created
            try:
                client.apply(root, MANAGER)
                break
            except Exception:
                time.sleep(0.1)
        else:
            client.apply(root, MANAGER)
        yield client
    finally:
        client.delete(API_VERSION, KIND, "root", install.NAMESPACE)
        if not had_namespace:
            client.delete("v1", "Namespace", install.NAMESPACE)
        for crd in created_crds:
            client.delete(CRD, "CustomResourceDefinition", crd["metadata"]["name"])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (
            (not had_namespace and client.get("v1", "Namespace", install.NAMESPACE) is not None)
            or any(
                client.get(CRD, "CustomResourceDefinition", c["metadata"]["name"]) is not None
                for c in created_crds
            )
        ):
            time.sleep(0.2)
        client.close()


def test_a_second_platform_on_the_cluster_is_refused_naming_the_first(
    cluster: KwokCluster, alpha_root: KubeClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLATFORM_HOME", str(tmp_path / "home"))
    flags = ["--only", "cluster", "--engine", "existing", "--kubeconfig", str(cluster.kubeconfig)]
    beta = run_platform("up", "--name", "beta", *flags)
    assert beta.returncode == 1, beta.stdout + beta.stderr
    assert "Error: This cluster already holds platform 'alpha'" in beta.stderr
    assert "`platform up --name alpha`" in beta.stderr
    assert "`platform down --name alpha`" in beta.stderr
    root = alpha_root.get(API_VERSION, KIND, "root", install.NAMESPACE) or {}
    assert root["spec"]["source"]["path"] == "registry/alpha"  # untouched
    recorded = PlatformState(tmp_path / "home", "beta").load()["stages"]["cluster"]
    assert recorded["outcome"] == "failed"

    alpha = run_platform("up", "--name", "alpha", *flags)
    assert alpha.returncode == 0, alpha.stdout + alpha.stderr
