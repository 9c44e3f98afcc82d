"""The certs manifests (namespace, CRDs, RBAC, Deployment) are accepted by a real API server."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.certs.conftest import MANIFESTS
from tests.support.kwok import KwokCluster

pytestmark = pytest.mark.integration


def test_manifests_apply(cluster: KwokCluster, tmp_path: Path) -> None:
    text = "\n---\n".join(p.read_text() for p in sorted(MANIFESTS.glob("*.yaml")))
    assert "${" in text
    text = text.replace("${COMPONENT_IMAGE}", "platform:test")
    assert "${" not in text
    cluster.kubectl("apply", "--server-side", "-f", "-", stdin=text)
    cluster.kubectl(
        "rollout", "status", "-n", "platform-certs", "deployment/platform-certs", "--timeout=90s"
    )
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
