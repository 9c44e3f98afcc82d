"""Apply a component's shipped manifests to the test cluster, as the bootstrap would.

Rendered by the project's own renderer (stacks.manifests) so the tests prove what ships.
"""

from __future__ import annotations

import yaml

from stacks.manifests import component_manifests
from tests.support.kwok import KwokCluster

TEST_VALUES = {
    "COMPONENT_IMAGE": "platform:test",
    "DOMAIN": "localdev.test",
    "VAULT_IMAGE": "bao:test",
}


def apply_shipped_manifests(
    cluster: KwokCluster, component: str, namespace: str, deployment: str
) -> None:
    """Server-side apply every manifest of `component`, then wait for its Deployment."""
    objects = component_manifests(component, TEST_VALUES)
    cluster.kubectl("apply", "--server-side", "-f", "-", stdin=yaml.safe_dump_all(objects))
    cluster.kubectl(
        "rollout", "status", "-n", namespace, f"deployment/{deployment}", "--timeout=90s"
    )
