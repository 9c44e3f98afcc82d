"""Fixtures for the secrets controller's integration tests: real API server, real OpenBao,
the controller as a real process.

`bao` is an unsealed OpenBao with KV v2 at `secret/` and KV v1 at `kv1/`; `controller`
starts `.venv/bin/platform run secrets` watching only the test's namespace; `Secrets`
creates stores and ExternalSecrets and waits on their status and on the target Secret.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from stacks.kube.client import KubeClient
from tests.support import processes
from tests.support.cli import PLATFORM
from tests.support.kwok import KwokCluster
from tests.support.openbao import InitResult, OpenBaoServer

MANIFESTS = Path(__file__).resolve().parents[3] / "stacks" / "secrets" / "manifests"
API = "secrets.platform.local/v1"


@pytest.fixture(scope="session")
def crds(cluster: KwokCluster) -> None:
    cluster.kubectl("apply", "--server-side", "-f", str(MANIFESTS / "10-crds.yaml"))
    for plural in ("externalsecrets", "secretstores", "clustersecretstores"):
        cluster.kubectl(
            "wait", "--for=condition=Established", f"crd/{plural}.secrets.platform.local"
        )


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


@pytest.fixture
def bao(unsealed_vault: tuple[OpenBaoServer, InitResult]) -> Bao:
    server, init = unsealed_vault
    ready = Bao(server, init)
    ready.call("POST", "sys/mounts/secret", {"type": "kv", "options": {"version": "2"}})
    ready.call("POST", "sys/mounts/kv1", {"type": "kv", "options": {"version": "1"}})
    return ready


@dataclass
class Controller:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def metrics(self) -> dict[str, float]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2) as answer:
            text = answer.read().decode()
        return {line.split()[0]: float(line.split()[1]) for line in text.splitlines() if line}


def start_controller(tmp_path: Path, args: list[str], name: str = "secrets") -> Controller:
    port = processes.free_port()
    log = tmp_path / f"{name}.log"
    process = processes.start(
        [str(PLATFORM), "run", "secrets", f"--listen=127.0.0.1:{port}", "--log-level=DEBUG", *args],
        log,
    )

    def healthy() -> bool:
        if process.poll() is not None:
            raise RuntimeError(
                f"controller exited {process.returncode}:\n{log.read_text()[-3000:]}"
            )
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as answer:
            return bool(answer.status == 200)

    processes.wait_for(healthy, timeout=30, what="the secrets controller's /readyz")
    return Controller(process, port, log)


@pytest.fixture
def controller_factory(tmp_path: Path) -> Iterator[Callable[[list[str]], Controller]]:
    started: list[Controller] = []

    def make(args: list[str]) -> Controller:
        running = start_controller(tmp_path, args, name=f"secrets-{len(started)}")
        started.append(running)
        return running

    yield make
    for running in started:
        processes.stop(running.process)
        assert running.process.returncode == 0, running.output()[-3000:]


@pytest.fixture
def controller(
    cluster: KwokCluster,
    crds: None,
    namespace: str,
    controller_factory: Callable[[list[str]], Controller],
) -> Controller:
    return controller_factory([f"--kubeconfig={cluster.kubeconfig}", f"--namespace={namespace}"])


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


@pytest.fixture
def secrets(
    cluster: KwokCluster, kube: KubeClient, namespace: str, bao: Bao, crds: None
) -> Secrets:
    return Secrets(cluster, kube, namespace, bao)


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
