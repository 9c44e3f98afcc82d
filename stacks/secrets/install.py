"""What the bootstrap `secrets` stage installs: the manifests and the platform's store.

Pure (reads the packaged YAML, builds dicts; no API calls). `manifests(image)` returns
the objects of stacks/secrets/manifests/ in apply order with `${COMPONENT_IMAGE}`
substituted; `platform_cluster_store(...)` returns the ClusterSecretStore that points at
the platform's Vault with Kubernetes auth as the controller's own ServiceAccount.

Called by the bootstrap `secrets` stage (and by whatever renders gitops-template/).
"""

from __future__ import annotations

from typing import Any

from stacks.manifests import component_manifests
from stacks.secrets.api import API_VERSION, CLUSTER_SECRET_STORE

NAMESPACE = "platform-secrets"
SERVICE_ACCOUNT = "secrets-controller"
CRD_NAMES = (
    "secretstores.secrets.platform.local",
    "clustersecretstores.secrets.platform.local",
    "externalsecrets.secrets.platform.local",
)


def manifests(image: str) -> list[dict[str, Any]]:
    """Every object to apply, CRDs first (file order: 00-namespace, 10-crds, 20-rbac, 30-deployment)."""
    return component_manifests("secrets", {"COMPONENT_IMAGE": image})


def platform_cluster_store(
    server: str,
    name: str = "vault",
    mount: str = "secret",
    role: str = SERVICE_ACCOUNT,
    auth_mount: str = "kubernetes",
) -> dict[str, Any]:
    """The platform's ClusterSecretStore: KV v2 at `mount`, Kubernetes auth `role`.

    Vault needs (terraform/vault): the kubernetes auth method at `auth_mount`, a role
    `role` bound to ServiceAccount platform-secrets/secrets-controller with a policy
    that reads `<mount>/data/*`; the Vault pod's own ServiceAccount needs
    `system:auth-delegator` for TokenReview.
    """
    return {
        "apiVersion": API_VERSION,
        "kind": CLUSTER_SECRET_STORE,
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "platform"}},
        "spec": {
            "provider": {
                "vault": {
                    "server": server,
                    "path": mount,
                    "version": "v2",
                    "auth": {
                        "kubernetes": {
                            "mountPath": auth_mount,
                            "role": role,
                            "serviceAccountRef": {"name": SERVICE_ACCOUNT, "namespace": NAMESPACE},
                        }
                    },
                }
            }
        },
    }
