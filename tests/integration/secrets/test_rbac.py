"""The shipped RBAC is enough: the controller runs with the `secrets-controller`
ServiceAccount's token (from the TokenRequest API) and does everything it needs:
watch its kinds, write status, read token Secrets, create/update/delete target Secrets,
request tokens for Kubernetes auth, and record Events. And it may not list Secrets."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from stacks.kube.client import KubeClient
from stacks.secrets.install import manifests
from tests.support import processes
from tests.support.components import Component
from tests.support.kwok import KwokCluster
from tests.support.secrets import MANIFESTS, Bao, Secrets, configure_kubernetes_auth, kubeconfig_ca

pytestmark = pytest.mark.integration


def test_runs_with_the_shipped_rbac(
    cluster: KwokCluster,
    crds: None,
    kube: KubeClient,
    namespace: str,
    bao: Bao,
    tmp_path: Path,
    controller_factory: Callable[[list[str]], Component],
) -> None:
    cluster.kubectl("apply", "--server-side", "-f", str(MANIFESTS / "00-namespace.yaml"))
    cluster.kubectl("apply", "--server-side", "-f", str(MANIFESTS / "20-rbac.yaml"))
    token = kube.token_request("platform-secrets", "secrets-controller", expiration_seconds=3600)
    token_file = tmp_path / "token"
    token_file.write_text(token)
    ca_file = tmp_path / "ca.crt"
    ca_file.write_text(kubeconfig_ca(cluster))

    as_controller = KubeClient.from_token(cluster.server(), token, str(ca_file))
    try:
        assert as_controller.self_subject_access("get", "", "secrets", namespace)
        assert not as_controller.self_subject_access("list", "", "secrets", namespace)
        assert not as_controller.self_subject_access(
            "update", "secrets.platform.local", "externalsecrets", namespace
        )
    finally:
        as_controller.close()

    controller = controller_factory(
        [
            f"--server={cluster.server()}",
            f"--token-file={token_file}",
            f"--ca-file={ca_file}",
            f"--namespace={namespace}",
        ]
    )
    secrets = Secrets(cluster, kube, namespace, bao)
    configure_kubernetes_auth(bao, cluster, namespace, account="app-reader", role="app")
    bao.put("app/db", {"password": "pw1"})
    secrets.token_store()
    secrets.store(
        "k8s", {"kubernetes": {"role": "app", "serviceAccountRef": {"name": "app-reader"}}}
    )
    secrets.wait_ready("k8s", kind="SecretStore", reason="Valid")
    secrets.wait_ready("vault", kind="SecretStore", reason="Valid")
    for name, store, policy in (("owned", "k8s", "Owner"), ("orphan", "vault", "Orphan")):
        secrets.external_secret(
            name,
            {
                "secretStoreRef": {"name": store, "kind": "SecretStore"},
                "refreshInterval": "1s",
                "target": {"creationPolicy": policy, "deletionPolicy": "Delete"},
                "data": [
                    {
                        "secretKey": "password",
                        "remoteRef": {"key": "app/db", "property": "password"},
                    }
                ],
            },
        )
        secrets.wait_data(name, {"password": "pw1"})
        secrets.wait_ready(name, reason="SecretSynced")
    bao.put("app/db", {"password": "pw2"})
    secrets.wait_data("owned", {"password": "pw2"}, timeout=10)
    bao.delete("app/db")
    processes.wait_for(
        lambda: secrets.secret("orphan") is None, 15, "deletionPolicy Delete to delete"
    )
    assert {e["reason"] for e in secrets.events("owned")} >= {"Created", "Updated"}
    output = controller.output()
    assert "Forbidden" not in output and " 403" not in output, output[-3000:]


def test_shipped_manifests_apply_and_the_deployment_becomes_available(
    cluster: KwokCluster, crds: None
) -> None:
    objects = manifests("registry.invalid/platform:test")
    cluster.kubectl("apply", "--server-side", "-f", "-", stdin=yaml.safe_dump_all(objects))
    cluster.kubectl(
        "rollout",
        "status",
        "deployment/secrets-controller",
        "-n",
        "platform-secrets",
        "--timeout=60s",
    )
