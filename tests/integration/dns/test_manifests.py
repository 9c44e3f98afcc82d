"""The dns manifests (namespace, CRDs, RBAC, Deployment) are accepted by a real API server."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.kwok import KwokCluster
from tests.support.manifests import apply_shipped_manifests

pytestmark = pytest.mark.integration


def test_manifests_apply(cluster: KwokCluster, tmp_path: Path) -> None:
    apply_shipped_manifests(cluster, "dns", "platform-dns", "platform-dns")
    who = "--as=system:serviceaccount:platform-dns:platform-dns"
    assert "yes" in cluster.kubectl(
        "auth", "can-i", "patch", "configmaps/coredns-custom", who, "-n", "kube-system", check=False
    )
    assert "no" in cluster.kubectl(
        "auth", "can-i", "patch", "configmaps/coredns", who, "-n", "kube-system", check=False
    )
    assert "no" in cluster.kubectl(
        "auth", "can-i", "get", "secrets", who, "-n", "kube-system", check=False
    )
