"""Manifests for tests: a component's shipped manifests applied to the test cluster as
the bootstrap would (rendered by the project's own renderer, stacks.manifests, so the
tests prove what ships), small CRDs for tests about CRDs themselves, and cluster RBAC for
tests about rights.
"""

from __future__ import annotations

from typing import Any

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


def schemaless_crd(group: str, kind: str, plural: str) -> dict[str, Any]:
    """A namespaced CRD, version v1, that keeps any fields: for tests about CRDs coming
    and going rather than about schemas."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "plural": plural,
                "singular": kind.lower(),
                "listKind": f"{kind}List",
            },
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }


def cluster_role_for(
    name: str, rules: list[dict[str, Any]], namespace: str, service_account: str
) -> list[dict[str, Any]]:
    """A ClusterRole `name` with `rules`, bound to ServiceAccount `namespace/service_account`."""
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": name},
            "rules": rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": name,
            },
            "subjects": [
                {"kind": "ServiceAccount", "name": service_account, "namespace": namespace}
            ],
        },
    ]
