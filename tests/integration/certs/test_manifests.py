"""The certs manifests (namespace, CRDs, RBAC, Deployment) are accepted by a real API server."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.kwok import KwokCluster
from tests.support.manifests import apply_shipped_manifests

pytestmark = pytest.mark.integration


def test_manifests_apply(cluster: KwokCluster, tmp_path: Path) -> None:
    apply_shipped_manifests(cluster, "certs", "platform-certs", "platform-certs")
    assert "yes" in cluster.kubectl(
        "auth",
        "can-i",
        "create",
        "secrets",
        "--as=system:serviceaccount:platform-certs:platform-certs",
        "-n",
        "default",
        check=False,
    )
    assert "no" in cluster.kubectl(
        "auth",
        "can-i",
        "delete",
        "secrets",
        "--as=system:serviceaccount:platform-certs:platform-certs",
        "-n",
        "default",
        check=False,
    )
