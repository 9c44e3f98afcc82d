"""A real Kubernetes control plane for tests: kwokctl with the binary runtime.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler are the real programs
built by testenv; kwok's controller plays the kubelet on fake nodes, so Pods become
Running and Deployments, StatefulSets and Jobs reach their real status, and with a
ClusterPortForward (`forward_to`) a port-forward to a pod reaches a real server on this
machine. Used by the session-scoped `cluster` fixture in tests/conftest.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support import processes

# The control plane's binaries (testenv builds them); the `cluster` fixture needs these.
KUBE_BINARIES = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "etcd",
    "kwok",
    "kwokctl",
)


@dataclass
class KwokCluster:
    name: str
    workdir: Path
    binaries: dict[str, Path]
    nodes: int = 2
    # A KwokctlConfiguration file (ports, component flags); the real-node cluster uses one.
    config: Path | None = None

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def pki_dir(self) -> Path:
        """kwokctl's CA and admin certificate (written when the cluster is created)."""
        return self.workdir / "kwok" / "clusters" / self.name / "pki"

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "KWOK_WORKDIR": str(self.workdir / "kwok"),
                "KWOK_RUNTIME": "binary",
                "KWOK_KUBE_APISERVER_BINARY": str(self.binaries["kube-apiserver"]),
                "KWOK_KUBE_CONTROLLER_MANAGER_BINARY": str(
                    self.binaries["kube-controller-manager"]
                ),
                "KWOK_KUBE_SCHEDULER_BINARY": str(self.binaries["kube-scheduler"]),
                "KWOK_CONTROLLER_BINARY": str(self.binaries["kwok"]),
                "KWOK_ETCD_BINARY": str(self.binaries["etcd"]),
                "KWOK_KUBECTL_BINARY": str(self.binaries["kubectl"]),
                "PLATFORM_TEST_RUN": processes.RUN_ID,
            }
        )
        return env

    def _kwokctl(self, *args: str, timeout: float = 180) -> str:
        cmd = [str(self.binaries["kwokctl"]), "--name", self.name, *args]
        result = subprocess.run(
            cmd, env=self._env(), capture_output=True, text=True, timeout=timeout, check=False
        )
        with open(self.workdir / "kwokctl.log", "a") as log:
            log.write(f"$ {' '.join(cmd)}\n{result.stdout}{result.stderr}\n")
        if result.returncode != 0:
            raise RuntimeError(
                f"kwokctl {' '.join(args[:2])} failed ({result.returncode}): {result.stderr[-2000:]}"
            )
        return result.stdout

    def create(self) -> None:
        """Create the cluster; one more try after a failed start. On a loaded machine
        kwokctl's own start races (seen: "failed to init crds: resource not handled",
        connection refused, nodes not Ready in time): a start that fails is torn down and
        made again once, so a fixture fails only when the cluster really cannot start."""
        try:
            self._create_once()
        except (RuntimeError, TimeoutError, subprocess.TimeoutExpired) as error:
            with open(self.workdir / "kwokctl.log", "a") as log:
                log.write(f"# the first start failed, trying once more: {error}\n")
            self.delete()
            self._create_once()

    def _create_once(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._kwokctl(
            "create",
            "cluster",
            "--runtime",
            "binary",
            "--kubeconfig",
            str(self.kubeconfig),
            # Tests create ClusterPortForwards (forward_to) so that a port-forward to a
            # kwok pod reaches a real server on this machine, e.g. OpenBao.
            "--enable-crds",
            "ClusterPortForward",
            "--wait",
            "120s",
            *(["--config", str(self.config)] if self.config else []),
        )
        if self.nodes:
            self._kwokctl("scale", "node", "--replicas", str(self.nodes))
            processes.wait_for(self._nodes_ready, timeout=60, what="kwok nodes to be Ready")

    def stop(self) -> None:
        """Stop every component, keeping the cluster's data (an outage; `start` ends it)."""
        self._kwokctl("stop", "cluster")

    def start(self) -> None:
        self._kwokctl("start", "cluster")

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        cmd = [str(self.binaries["kubectl"]), "--kubeconfig", str(self.kubeconfig), *args]
        result = subprocess.run(
            cmd, input=stdin, capture_output=True, text=True, timeout=120, check=False
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def wait_established(self, crd: str) -> None:
        """Wait until the CRD named `crd` (plural.group) serves its kind. kubectl's default
        30 s is too short on a loaded machine, where the CRD may have no status yet."""
        self.kubectl("wait", "--for=condition=Established", "--timeout=120s", f"crd/{crd}")

    def service_account_kubeconfig(self, namespace: str, name: str, path: Path) -> Path:
        """A kubeconfig (0600) that acts as a new ServiceAccount `namespace/name`: an
        identity with no rights until a test binds some."""
        self.kubectl("create", "serviceaccount", name, "-n", namespace)
        token = self.kubectl("create", "token", name, "-n", namespace, "--duration", "1h").strip()
        admin = json.loads(self.kubectl("config", "view", "--raw", "-o", "json"))
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": name,
            "clusters": [{"name": "test", "cluster": admin["clusters"][0]["cluster"]}],
            "users": [{"name": name, "user": {"token": token}}],
            "contexts": [{"name": name, "context": {"cluster": "test", "user": name}}],
        }
        path.write_text(json.dumps(config))
        path.chmod(0o600)
        return path

    @contextmanager
    def forward_to(self, namespace: str, port: int, target_port: int) -> Iterator[None]:
        """While open, a port-forward to `port` of any pod in `namespace` (through the
        API server and kwok, as to a real kubelet) reaches 127.0.0.1:`target_port`."""
        name = f"test-{namespace}-{port}"
        forward = {
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "ClusterPortForward",
            "metadata": {"name": name},
            "spec": {
                "selector": {"matchNamespaces": [namespace]},
                "forwards": [
                    {"ports": [port], "target": {"address": "127.0.0.1", "port": target_port}}
                ],
            },
        }
        self.kubectl("apply", "-f", "-", stdin=json.dumps(forward))
        try:
            yield
        finally:
            self.kubectl("delete", "clusterportforward", name, "--ignore-not-found", check=False)

    def _nodes_ready(self) -> bool:
        nodes = json.loads(self.kubectl("get", "nodes", "-o", "json"))["items"]
        ready = [
            n
            for n in nodes
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in n.get("status", {}).get("conditions", [])
            )
        ]
        return len(ready) >= self.nodes

    def server(self) -> str:
        return self.kubectl(
            "config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}"
        )

    def version(self) -> str:
        info = json.loads(self.kubectl("version", "-o", "json"))
        return str(info["serverVersion"]["gitVersion"])

    def delete(self) -> None:
        try:
            self._kwokctl("delete", "cluster", timeout=120)
        finally:
            self._stop_leftovers()
            shutil.rmtree(self.workdir / "kwok", ignore_errors=True)

    def _stop_leftovers(self) -> None:
        """kwokctl signals its components and returns; on a loaded machine etcd can still
        be shutting down. Wait for them, then end any that linger, so no test run leaves
        a process behind."""
        marker = str(self.workdir)

        def mine() -> list[int]:
            return [int(line.split(":", 1)[0]) for line in processes.leaked() if marker in line]

        deadline = time.monotonic() + 15
        while mine() and time.monotonic() < deadline:
            time.sleep(0.2)
        for pid in mine():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def created_cluster(prefix: str, workdir: Path) -> KwokCluster:
    """A kwok cluster named `prefix`-<random> on the testenv binaries, created (the
    benchmarks' start); one whose start fails is torn down before the error goes on."""
    from tests.support.binaries import require_binary

    cluster = KwokCluster(
        name=f"{prefix}-{uuid.uuid4().hex[:6]}",
        workdir=workdir,
        binaries={name: require_binary(name) for name in KUBE_BINARIES},
    )
    try:
        cluster.create()
    except BaseException:
        cluster.delete()
        raise
    return cluster
