"""Helpers for tests of the secrets controller: a real OpenBao with KV mounts (`Bao`),
stores and ExternalSecrets on the real API server and waits on them (`Secrets`), and
OpenBao's Kubernetes auth pointed at the test cluster.

Used by tests/integration/secrets/ (fixtures in its conftest.py) and the e2e tests.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from stacks.kube.client import KubeClient
from tests.support import processes
from tests.support.kwok import KwokCluster
from tests.support.openbao import InitResult, OpenBaoServer

API = "secrets.platform.local/v1"
MANIFESTS = Path(__file__).resolve().parents[2] / "stacks" / "secrets" / "manifests"


@dataclass
class Bao:
    server: OpenBaoServer
    init: InitResult

    @property
    def token(self) -> str:
        return self.init.root_token

    def call(self, method: str, path: str, body: Any = None) -> Any:
        return self.server.request(method, path, self.token, body)

    def put(self, key: str, data: dict[str, Any], mount: str = "secret") -> None:
        if mount == "secret":
            self.call("POST", f"secret/data/{key}", {"data": data})
        else:
            self.call("POST", f"{mount}/{key}", data)

    def delete(self, key: str) -> None:
        self.call("DELETE", f"secret/metadata/{key}")


def decode(secret: dict[str, Any] | None) -> dict[str, str]:
    assert secret is not None
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


class Secrets:
    """Create stores and ExternalSecrets in the test namespace; wait on them."""

    def __init__(
        self, cluster: KwokCluster, kube: KubeClient, namespace: str, bao: Bao | None
    ) -> None:
        self.cluster = cluster
        self.kube = kube
        self.namespace = namespace
        self.bao = bao

    def apply(self, obj: dict[str, Any]) -> None:
        self.cluster.kubectl("apply", "--server-side", "-f", "-", stdin=json.dumps(obj))

    def token_store(self, name: str = "vault", token: str | None = None, **vault: Any) -> None:
        assert self.bao is not None
        self.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": f"{name}-token", "namespace": self.namespace},
                "stringData": {"token": token if token is not None else self.bao.token},
            }
        )
        self.store(name, {"tokenSecretRef": {"name": f"{name}-token", "key": "token"}}, **vault)

    def store(self, name: str, auth: dict[str, Any], **vault: Any) -> None:
        assert self.bao is not None
        provider = {
            "server": self.bao.server.address,
            "path": "secret",
            "version": "v2",
            "auth": auth,
        }
        provider.update(vault)
        self.apply(
            {
                "apiVersion": API,
                "kind": "SecretStore",
                "metadata": {"name": name, "namespace": self.namespace},
                "spec": {"provider": {"vault": provider}},
            }
        )

    def external_secret(
        self, name: str, spec: dict[str, Any], annotations: dict[str, str] | None = None
    ) -> None:
        full = {"refreshInterval": "1h", "secretStoreRef": {"name": "vault", "kind": "SecretStore"}}
        full.update(spec)
        meta: dict[str, Any] = {"name": name, "namespace": self.namespace}
        if annotations:
            meta["annotations"] = annotations
        self.apply({"apiVersion": API, "kind": "ExternalSecret", "metadata": meta, "spec": full})

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        return self.kube.get(API, kind, name, self.namespace)

    def secret(self, name: str) -> dict[str, Any] | None:
        return self.kube.get("v1", "Secret", name, self.namespace)

    def ready(self, kind: str, name: str) -> dict[str, Any] | None:
        obj = self.get(kind, name) or {}
        for condition in (obj.get("status") or {}).get("conditions") or []:
            if condition["type"] == "Ready":
                return dict(condition)
        return None

    def wait_ready(
        self,
        name: str,
        status: str = "True",
        reason: str | None = None,
        contains: str = "",
        timeout: float = 30,
        kind: str = "ExternalSecret",
    ) -> dict[str, Any]:
        def check() -> bool:
            condition = self.ready(kind, name)
            return bool(
                condition
                and condition["status"] == status
                and (reason is None or condition["reason"] == reason)
                and contains in condition.get("message", "")
            )

        processes.wait_for(
            check,
            timeout,
            f"{kind} {name} Ready={status} {reason or ''} {contains!r} (last: {self.ready(kind, name)})",
        )
        condition = self.ready(kind, name)
        assert condition is not None
        return condition

    def wait_data(self, name: str, expected: dict[str, str], timeout: float = 30) -> float:
        start = time.monotonic()
        processes.wait_for(
            lambda: self.secret(name) is not None and decode(self.secret(name)) == expected,
            timeout,
            f"Secret {name} to hold {sorted(expected)} (last: {sorted(decode(self.secret(name))) if self.secret(name) else None})",
        )
        return time.monotonic() - start

    def events(self, name: str) -> list[dict[str, Any]]:
        items = self.kube.list_objects("v1", "Event", self.namespace)
        return [e for e in items if e.get("involvedObject", {}).get("name") == name]


def kubeconfig_ca(cluster: KwokCluster) -> str:
    """The API server's CA (PEM) from the test cluster's kubeconfig."""
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    entry = config["clusters"][0]["cluster"]
    if entry.get("certificate-authority-data"):
        return base64.b64decode(entry["certificate-authority-data"]).decode()
    return Path(entry["certificate-authority"]).read_text()


def configure_kubernetes_auth(
    bao: Bao, cluster: KwokCluster, namespace: str, account: str, role: str, ttl: str = "60s"
) -> None:
    """OpenBao's kubernetes auth method pointed at the test cluster (real TokenReview)."""
    bao.call("POST", "sys/auth/kubernetes", {"type": "kubernetes"})
    bao.call(
        "POST",
        "auth/kubernetes/config",
        {
            "kubernetes_host": cluster.server(),
            "kubernetes_ca_cert": kubeconfig_ca(cluster),
            "disable_local_ca_jwt": True,
        },
    )
    bao.call(
        "POST",
        "sys/policies/acl/read-secrets",
        {
            "policy": 'path "secret/data/*" { capabilities = ["read"] }\n'
            'path "kv1/*" { capabilities = ["read"] }\n'
        },
    )
    bao.call(
        "POST",
        f"auth/kubernetes/role/{role}",
        {
            "bound_service_account_names": [account],
            "bound_service_account_namespaces": [namespace],
            "token_policies": ["read-secrets"],
            "token_ttl": ttl,
            "token_max_ttl": ttl,
        },
    )
    # OpenBao reviews the login JWT with itself as the reviewer: the account needs
    # system:auth-delegator (what the Vault docs tell users to grant).
    cluster.kubectl("create", "serviceaccount", account, "-n", namespace)
    cluster.kubectl(
        "create",
        "clusterrolebinding",
        f"{namespace}-{account}-delegator",
        "--clusterrole=system:auth-delegator",
        f"--serviceaccount={namespace}:{account}",
    )
