"""Benchmark the secrets controller against a real API server (kwokctl) and a real OpenBao.

    .venv/bin/python bench/secrets_bench.py [--count 200] [--samples 30] [--workers 4]

1. Cold start: `--count` ExternalSecrets (refreshInterval 1s, each reading its own KV v2
   key with two properties) are applied before the controller starts; then
   `platform run secrets` (a real subprocess) starts, timed until every one is Ready.
   Peer, measured in the same run: the floor for the same work done in a tight loop in
   this process (read the key with hvac, server-side apply the Secret with KubeClient:
   no watches, no status, no queue). Prints the ratio.
2. Latency at a 1 s refresh: `--samples` times, change one key in Vault and poll its
   Secret every 20 ms until the new value is there (goal: within interval + 1 s = 2 s).
3. Memory: resident set size (VmRSS, and the peak VmHWM) of the controller after the
   load, and its CPU use in steady state (all ExternalSecrets refreshing every second).
Results go in bench/README.md, section "## Secrets".
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import statistics
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import hvac
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from stacks.kube.client import KubeClient  # noqa: E402 - after the path is set
from tests.support import processes  # noqa: E402
from tests.support.binaries import require_binary  # noqa: E402
from tests.support.kwok import KUBE_BINARIES, KwokCluster  # noqa: E402
from tests.support.openbao import OpenBaoServer, initialise_and_unseal  # noqa: E402

PLATFORM = Path(sys.executable).parent / "platform"
API = "secrets.platform.local/v1"


def proc_status(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ready_count(kube: KubeClient, namespace: str) -> int:
    count = 0
    for es in kube.list_objects(API, "ExternalSecret", namespace):
        for cond in (es.get("status") or {}).get("conditions") or []:
            if cond["type"] == "Ready" and cond["status"] == "True":
                count += 1
    return count


def wait(predicate: Any, timeout: float, interval: float = 0.2) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s")


def external_secret(namespace: str, index: int) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "ExternalSecret",
        "metadata": {"name": f"es-{index}", "namespace": namespace},
        "spec": {
            "refreshInterval": "1s",
            "secretStoreRef": {"name": "vault", "kind": "SecretStore"},
            "target": {"name": f"secret-{index}"},
            "data": [
                {
                    "secretKey": "username",
                    "remoteRef": {"key": f"bench/{index}", "property": "username"},
                },
                {
                    "secretKey": "password",
                    "remoteRef": {"key": f"bench/{index}", "property": "password"},
                },
            ],
        },
    }


def floor(kube: KubeClient, bao: hvac.Client, namespace: str, count: int) -> float:
    """The same reads and writes in a tight loop in this process (no runtime at all)."""
    start = time.monotonic()
    for index in range(count):
        data = bao.secrets.kv.v2.read_secret_version(
            path=f"bench/{index}", mount_point="secret", raise_on_deleted_version=True
        )["data"]["data"]
        kube.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": f"floor-{index}", "namespace": namespace},
                "data": {
                    k: base64.b64encode(str(data[k]).encode()).decode()
                    for k in ("username", "password")
                },
            },
            "bench-floor",
        )
    return time.monotonic() - start


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="secrets-bench-"))
    binaries = {name: require_binary(name) for name in KUBE_BINARIES}
    cluster = KwokCluster(
        name=f"bench-{uuid.uuid4().hex[:6]}", workdir=work / "kwok", binaries=binaries
    )
    server = OpenBaoServer(binary=require_binary("bao"), workdir=work / "openbao")
    controller = None
    try:
        cluster.create()
        server.start()
        init = initialise_and_unseal(server)
        token = init.root_token
        server.request(
            "POST", "sys/mounts/secret", token, {"type": "kv", "options": {"version": "2"}}
        )
        bao = hvac.Client(url=server.address, token=token)
        for index in range(args.count):
            bao.secrets.kv.v2.create_or_update_secret(
                path=f"bench/{index}",
                mount_point="secret",
                secret={"username": f"user-{index}", "password": "p0"},
            )
        kube = KubeClient.from_kubeconfig(str(cluster.kubeconfig))
        cluster.kubectl(
            "apply", "--server-side", "-f", str(ROOT / "stacks/secrets/manifests/10-crds.yaml")
        )
        cluster.kubectl(
            "wait", "--for=condition=Established", "crd/externalsecrets.secrets.platform.local"
        )
        namespace = "bench"
        cluster.kubectl("create", "namespace", namespace)
        docs: list[dict[str, Any]] = [
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "vault-token", "namespace": namespace},
                "stringData": {"token": token},
            },
            {
                "apiVersion": API,
                "kind": "SecretStore",
                "metadata": {"name": "vault", "namespace": namespace},
                "spec": {
                    "provider": {
                        "vault": {
                            "server": server.address,
                            "path": "secret",
                            "version": "v2",
                            "auth": {"tokenSecretRef": {"name": "vault-token", "key": "token"}},
                        }
                    }
                },
            },
        ]
        docs += [external_secret(namespace, i) for i in range(args.count)]
        cluster.kubectl("apply", "--server-side", "-f", "-", stdin=yaml.safe_dump_all(docs))

        floor_seconds = floor(kube, bao, namespace, args.count)

        port = processes.free_port()
        log = work / "controller.log"
        started = time.monotonic()
        controller = processes.start(
            [
                PLATFORM,
                "run",
                "secrets",
                f"--kubeconfig={cluster.kubeconfig}",
                f"--namespace={namespace}",
                f"--listen=127.0.0.1:{port}",
                f"--workers={args.workers}",
            ],
            log,
        )
        wait(lambda: ready_count(kube, namespace) == args.count, timeout=300, interval=0.25)
        cold = time.monotonic() - started
        rss_after_cold = proc_status(controller.pid, "VmRSS")

        latencies: list[float] = []
        for sample in range(args.samples):
            index = random.randrange(args.count)
            value = f"p{sample + 1}-{uuid.uuid4().hex[:4]}"
            bao.secrets.kv.v2.create_or_update_secret(
                path=f"bench/{index}",
                mount_point="secret",
                secret={"username": f"user-{index}", "password": value},
            )
            changed = time.monotonic()
            encoded = base64.b64encode(value.encode()).decode()

            def arrived(index: int = index, encoded: str = encoded) -> bool:
                secret = kube.get("v1", "Secret", f"secret-{index}", namespace) or {}
                return bool((secret.get("data") or {}).get("password") == encoded)

            wait(arrived, timeout=30, interval=0.02)
            latencies.append(time.monotonic() - changed)
            time.sleep(random.uniform(0.0, 0.5))

        cpu_before = cpu_seconds(controller.pid)
        time.sleep(10)
        cpu_steady = (cpu_seconds(controller.pid) - cpu_before) / 10
        rss = proc_status(controller.pid, "VmRSS")
        hwm = proc_status(controller.pid, "VmHWM")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            metrics = answer.read().decode()

        latencies.sort()
        p95 = latencies[max(0, int(len(latencies) * 0.95) - 1)]
        print(f"\n{args.count} ExternalSecrets, refreshInterval 1s, {args.workers} workers")
        print(
            f"cold start to all Ready: {cold:.2f} s (floor, tight loop read+apply: {floor_seconds:.2f} s; ratio {cold / floor_seconds:.2f}x)"
        )
        print(
            f"Vault change -> Secret latency over {len(latencies)} samples: median {statistics.median(latencies):.2f} s, "
            f"p95 {p95:.2f} s, max {latencies[-1]:.2f} s (goal <= 2.0 s)"
        )
        print(
            f"RSS after cold start {rss_after_cold:.1f} MiB, after the run {rss:.1f} MiB, peak {hwm:.1f} MiB (goal < 120 MB)"
        )
        print(f"steady-state CPU at 1s refresh x {args.count}: {cpu_steady * 100:.0f}% of one core")
        print(
            "metrics:\n"
            + "".join(
                f"  {line}\n" for line in metrics.splitlines() if line.startswith("platform_")
            )
        )
        kube.close()
    finally:
        if controller is not None:
            processes.stop(controller)
        server.stop()
        cluster.delete()
    return 0


if __name__ == "__main__":
    sys.exit(main())
