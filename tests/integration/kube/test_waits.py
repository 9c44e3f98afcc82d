"""stacks/kube/waits.py against the real API server: CRDs Established, namespaces gone."""

from __future__ import annotations

import pytest

from stacks.errors import WaitingError
from stacks.kube.client import KubeClient
from stacks.kube.waits import wait_crds_established, wait_namespaces_gone
from tests.support.kwok import KwokCluster
from tests.support.manifests import schemaless_crd

pytestmark = pytest.mark.integration


def test_crd_established_or_a_clear_error(cluster: KwokCluster, namespace: str) -> None:
    client = KubeClient.from_kubeconfig(str(cluster.kubeconfig))
    group = f"w{namespace.replace('-', '')[-12:]}.example.com"
    client.create(schemaless_crd(group, "Gadget", "gadgets"))
    try:
        wait_crds_established(client, [f"gadgets.{group}"], timeout=30)
        with pytest.raises(WaitingError, match=rf"absent\.{group} are not Established after 1s"):
            wait_crds_established(client, [f"gadgets.{group}", f"absent.{group}"], timeout=1)
    finally:
        client.delete("apiextensions.k8s.io/v1", "CustomResourceDefinition", f"gadgets.{group}")
        client.close()


def test_namespaces_gone(cluster: KwokCluster, kube: KubeClient) -> None:
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "wait-gone"}})
    seen: list[list[str]] = []
    assert wait_namespaces_gone(kube, ["wait-gone"], timeout=0.5, on_wait=seen.append) == [
        "wait-gone"
    ]
    assert seen == [["wait-gone"]]
    kube.delete("v1", "Namespace", "wait-gone")
    assert wait_namespaces_gone(kube, ["wait-gone", "never-there"], timeout=60) == []
