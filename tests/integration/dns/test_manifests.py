"""The dns manifests (namespace, CRDs, RBAC, Deployment) are accepted by a real API server."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.dns.conftest import MANIFESTS
from tests.support.kwok import KwokCluster

pytestmark = pytest.mark.integration


def test_manifests_apply(cluster: KwokCluster, tmp_path: Path) -> None:
    text = "\n---\n".join(p.read_text() for p in sorted(MANIFESTS.glob("*.yaml")))
    assert "${" in text
    text = text.replace("${COMPONENT_IMAGE}", "platform:test")
    assert "${" not in text
    cluster.kubectl("apply", "--server-side", "-f", "-", stdin=text)
    cluster.kubectl(
        "rollout", "status", "-n", "platform-dns", "deployment/platform-dns", "--timeout=90s"
    )
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
