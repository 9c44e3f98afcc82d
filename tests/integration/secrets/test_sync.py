"""Vault -> Secret against a real API server and a real OpenBao: first sync, changes within
the refresh interval, force-sync, KV v1, token and Kubernetes auth, store status."""

from __future__ import annotations

import time
import uuid

import pytest

from stacks.kube.client import KubeClient
from tests.support.components import Component
from tests.support.kwok import KwokCluster
from tests.support.secrets import Bao, Secrets, configure_kubernetes_auth, decode

pytestmark = pytest.mark.integration


def test_secret_appears_follows_changes_and_force_sync(
    controller: Component, secrets: Secrets, bao: Bao
) -> None:
    bao.put("app/db", {"username": "app", "password": "s3cret", "nested": {"port": 5432}})
    secrets.token_store()
    secrets.external_secret(
        "db",
        {
            "refreshInterval": "2s",
            "target": {"name": "db-credentials"},
            "data": [
                {"secretKey": "user", "remoteRef": {"key": "app/db", "property": "username"}},
                {"secretKey": "pass", "remoteRef": {"key": "app/db", "property": "password"}},
                {"secretKey": "port", "remoteRef": {"key": "app/db", "property": "nested.port"}},
            ],
        },
    )
    secrets.wait_data("db-credentials", {"user": "app", "pass": "s3cret", "port": "5432"})
    condition = secrets.wait_ready("db", reason="SecretSynced")
    assert condition["message"] == "secret synced"
    es = secrets.get("ExternalSecret", "db")
    assert es is not None
    assert es["status"]["refreshTime"]
    assert es["status"]["syncedResourceVersion"].startswith("1-")
    secret = secrets.secret("db-credentials")
    assert secret is not None
    meta = secret["metadata"]
    assert meta["labels"]["secrets.platform.local/managed"] == "true"
    assert len(meta["annotations"]["secrets.platform.local/data-hash"]) == 32
    assert meta["ownerReferences"][0]["uid"] == es["metadata"]["uid"]
    assert secrets.wait_ready("vault", kind="SecretStore", reason="Valid")

    # A change in Vault reaches the Secret within the refresh interval (2 s) plus slack.
    bao.put("app/db", {"username": "app", "password": "rotated", "nested": {"port": 5432}})
    took = secrets.wait_data(
        "db-credentials", {"user": "app", "pass": "rotated", "port": "5432"}, timeout=10
    )
    assert took < 2 + 2.5, f"took {took:.1f}s"

    # A long interval: a change waits ... until force-sync, which applies at once.
    secrets.external_secret(
        "slow",
        {
            "refreshInterval": "1h",
            "dataFrom": [{"extract": {"key": "app/db"}}],
        },
    )
    secrets.wait_data("slow", {"username": "app", "password": "rotated", "nested": '{"port":5432}'})
    bao.put("app/db", {"username": "app2", "password": "rotated"})
    # Two more syncs ("db" refreshes every 2 s) show the controller at work since the
    # change; only then does "slow" still holding the old value mean it waits.
    syncs = controller.metrics()["platform_secrets_syncs_total"]
    controller.wait_metric("platform_secrets_syncs_total", above=syncs + 1, timeout=15)
    assert decode(secrets.secret("slow"))["username"] == "app"
    secrets.cluster.kubectl(
        "annotate",
        "externalsecret",
        "slow",
        "-n",
        secrets.namespace,
        f"secrets.platform.local/force-sync={uuid.uuid4().hex[:6]}",
    )
    took = secrets.wait_data("slow", {"username": "app2", "password": "rotated"}, timeout=10)
    assert took < 3, f"force-sync took {took:.1f}s"

    reasons = {e["reason"] for e in secrets.events("db")}
    assert {"Created", "Updated"} <= reasons
    # no secret value in the status, the events or the log
    text = (
        str(secrets.get("ExternalSecret", "db")) + str(secrets.events("db")) + controller.output()
    )
    for value in ("s3cret", "rotated", bao.token):
        assert value not in text


def test_kv_v1_and_templates(controller: Component, secrets: Secrets, bao: Bao) -> None:
    bao.put("legacy", {"api-key": "k1", "host": "db.local"}, mount="kv1")
    secrets.token_store("v1store", path="kv1", version="v1")
    secrets.external_secret(
        "tpl",
        {
            "secretStoreRef": {"name": "v1store", "kind": "SecretStore"},
            "target": {
                "name": "rendered",
                "template": {
                    "type": "kubernetes.io/basic-auth",
                    "metadata": {"labels": {"team": "a"}, "annotations": {"note": "templated"}},
                    "data": {
                        "username": "admin",
                        "password": '{{ index . "api-key" }}',
                        "url": "postgres://{{ .host }}:5432/app",
                    },
                },
            },
            "dataFrom": [{"extract": {"key": "legacy"}}],
        },
    )
    secrets.wait_data(
        "rendered", {"username": "admin", "password": "k1", "url": "postgres://db.local:5432/app"}
    )
    secret = secrets.secret("rendered")
    assert secret is not None
    assert secret["type"] == "kubernetes.io/basic-auth"
    assert secret["metadata"]["labels"]["team"] == "a"
    assert secret["metadata"]["annotations"]["note"] == "templated"

    # a template that names a missing key is not Ready and writes nothing
    secrets.external_secret(
        "badtpl",
        {
            "secretStoreRef": {"name": "v1store", "kind": "SecretStore"},
            "target": {"template": {"data": {"x": "{{ .nope }}"}}},
            "dataFrom": [{"extract": {"key": "legacy"}}],
        },
    )
    condition = secrets.wait_ready("badtpl", status="False", reason="SecretSyncedError")
    assert "'nope'" in condition["message"]
    assert secrets.secret("badtpl") is None


def test_kubernetes_auth_end_to_end(
    controller: Component, secrets: Secrets, bao: Bao, cluster: KwokCluster, namespace: str
) -> None:
    # Vault tokens from this role live 3 s: the controller must log in again before expiry.
    configure_kubernetes_auth(bao, cluster, namespace, account="app-reader", role="app", ttl="3s")
    bao.put("app/api", {"token": "abc"})
    secrets.store(
        "k8s",
        {
            "kubernetes": {
                "mountPath": "kubernetes",
                "role": "app",
                "serviceAccountRef": {"name": "app-reader"},
            }
        },
    )
    secrets.wait_ready("k8s", kind="SecretStore", reason="Valid")
    secrets.external_secret(
        "api",
        {
            "secretStoreRef": {"name": "k8s", "kind": "SecretStore"},
            "refreshInterval": "1s",
            "data": [{"secretKey": "token", "remoteRef": {"key": "app/api", "property": "token"}}],
        },
    )
    secrets.wait_data("api", {"token": "abc"})
    # keep syncing well past the first token's expiry
    for value in ("def", "ghi"):
        time.sleep(4)
        bao.put("app/api", {"token": value})
        secrets.wait_data("api", {"token": value}, timeout=5)
    secrets.wait_ready("api", reason="SecretSynced")
    assert "refused" not in controller.output()

    # a role that does not bind this account: the store says why
    secrets.store(
        "wrong", {"kubernetes": {"role": "nobody", "serviceAccountRef": {"name": "app-reader"}}}
    )
    condition = secrets.wait_ready(
        "wrong", kind="SecretStore", status="False", reason="ValidationFailed"
    )
    assert "Kubernetes login" in condition["message"]


def test_store_status_reasons(controller: Component, secrets: Secrets, bao: Bao) -> None:
    secrets.token_store("bad-token", token="not-a-token")
    condition = secrets.wait_ready(
        "bad-token", kind="SecretStore", status="False", reason="ValidationFailed"
    )
    assert "not-a-token" not in condition["message"]
    secrets.store("no-secret", {"tokenSecretRef": {"name": "missing", "key": "token"}})
    condition = secrets.wait_ready(
        "no-secret", kind="SecretStore", status="False", reason="InvalidProviderConfig"
    )
    assert "does not exist" in condition["message"]


def test_admission_rejects_forbidden_policy_combinations(secrets: Secrets) -> None:
    for creation, deletion in (("Merge", "Delete"), ("None", "Delete"), ("None", "Merge")):
        with pytest.raises(RuntimeError, match="cannot be combined"):
            secrets.external_secret(
                f"bad-{creation.lower()}-{deletion.lower()}",
                {
                    "target": {"creationPolicy": creation, "deletionPolicy": deletion},
                    "data": [{"secretKey": "a", "remoteRef": {"key": "x"}}],
                },
            )
    with pytest.raises(RuntimeError, match="exactly one"):
        secrets.store(
            "both",
            {
                "tokenSecretRef": {"name": "a", "key": "b"},
                "kubernetes": {"role": "r", "serviceAccountRef": {"name": "s"}},
            },
        )


def test_cluster_secret_store(
    cluster: KwokCluster,
    crds: None,
    kube: KubeClient,
    namespace: str,
    bao: Bao,
    controller: Component,
) -> None:
    name = f"css-{uuid.uuid4().hex[:6]}"
    secrets = Secrets(cluster, kube, namespace, bao)
    secrets.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "root-token", "namespace": namespace},
            "stringData": {"token": bao.token},
        }
    )
    with pytest.raises(RuntimeError, match="namespace"):
        secrets.apply(
            {
                "apiVersion": "secrets.platform.local/v1",
                "kind": "ClusterSecretStore",
                "metadata": {"name": name},
                "spec": {
                    "provider": {
                        "vault": {
                            "server": bao.server.address,
                            "auth": {"tokenSecretRef": {"name": "root-token", "key": "token"}},
                        }
                    }
                },
            }
        )
    secrets.apply(
        {
            "apiVersion": "secrets.platform.local/v1",
            "kind": "ClusterSecretStore",
            "metadata": {"name": name},
            "spec": {
                "provider": {
                    "vault": {
                        "server": bao.server.address,
                        "path": "secret",
                        "auth": {
                            "tokenSecretRef": {
                                "name": "root-token",
                                "key": "token",
                                "namespace": namespace,
                            }
                        },
                    }
                }
            },
        }
    )
    try:
        bao.put("shared", {"v": "1"})
        secrets.external_secret(
            "shared",
            {
                "secretStoreRef": {"name": name, "kind": "ClusterSecretStore"},
                "data": [
                    {"secretKey": "v", "remoteRef": {"key": "secret/shared", "property": "v"}}
                ],
            },
        )
        secrets.wait_data("shared", {"v": "1"})
    finally:
        cluster.kubectl("delete", "clustersecretstore", name, "--wait=false")
