"""Benchmark the certs and DNS stubs against a real API server (kwokctl), in one run.

    .venv/bin/python bench/certs_bench.py [--certs 500] [--ingresses 500] [--algorithm RSA|ECDSA]

certs: `platform run certs` (a real subprocess) with a CA ClusterIssuer; `--certs`
Certificates are applied in one `kubectl apply`, timed until every one is Ready. Peer,
measured in the same run: the floor for the same work done in a tight loop in this
process (issue each certificate with stacks.certs.pki and server-side apply its Secret
with KubeClient: no watches, no status, no queue). Prints the ratio.
dns: `platform run dns` with `--ingresses` Ingresses applied at once, timed until every
host is in the hosts file of `coredns-custom`.
Memory: resident set size (VmRSS) of each stub, idle after start and after the load.
Results go in bench/README.md, section "## Certs and DNS".
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from stacks.certs import pki, policy  # noqa: E402 - after the path is set
from stacks.dns.hosts import HOSTS_KEY  # noqa: E402
from stacks.kube.client import KubeClient  # noqa: E402
from tests.support import processes  # noqa: E402
from tests.support.kwok import KwokCluster, created_cluster  # noqa: E402

PLATFORM = Path(sys.executable).parent / "platform"
API = policy.API_VERSION


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def apply(cluster: KwokCluster, objects: list[dict[str, Any]]) -> None:
    cluster.kubectl("apply", "--server-side", "-f", "-", stdin=yaml.safe_dump_all(objects))


def ready_count(kube: KubeClient, namespace: str) -> int:
    count = 0
    for cert in kube.list_objects(API, "Certificate", namespace):
        for cond in (cert.get("status") or {}).get("conditions") or []:
            if cond["type"] == "Ready" and cond["status"] == "True":
                count += 1
    return count


def wait(predicate: Any, timeout: float, interval: float = 0.5) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(interval)
    raise TimeoutError("benchmark step timed out")


def bench_certs(
    cluster: KwokCluster, kube: KubeClient, work: Path, count: int, algorithm: str
) -> dict[str, float]:
    cluster.kubectl(
        "apply", "--server-side", "-f", str(ROOT / "stacks/certs/manifests/10-crd.yaml")
    )
    cluster.kubectl("wait", "--for=condition=Established", "crd/certificates.certs.platform.local")
    ns = "bench-certs"
    cluster.kubectl("create", "namespace", ns)
    ca = pki.create_ca("bench CA", dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/tls",
            "metadata": {"name": "bench-ca", "namespace": ns},
            "data": {
                "tls.crt": base64.b64encode(ca.cert_pem).decode(),
                "tls.key": base64.b64encode(ca.key_pem).decode(),
            },
        }
    )
    apply(
        cluster,
        [
            {
                "apiVersion": API,
                "kind": "ClusterIssuer",
                "metadata": {"name": "bench"},
                "spec": {"ca": {"secretName": "bench-ca"}},
            }
        ],
    )
    process = processes.start(
        [
            PLATFORM,
            "run",
            "certs",
            "--kubeconfig",
            str(cluster.kubeconfig),
            "--cluster-resource-namespace",
            ns,
            "--log-level",
            "WARNING",
        ],
        log=work / "certs.log",
    )
    try:
        time.sleep(3)
        idle = rss_mib(process.pid)
        certs = [
            {
                "apiVersion": API,
                "kind": "Certificate",
                "metadata": {"name": f"c{i}", "namespace": ns},
                "spec": {
                    "secretName": f"c{i}-tls",
                    "dnsNames": [f"c{i}.bench.test"],
                    "issuerRef": {"name": "bench", "kind": "ClusterIssuer"},
                    "privateKey": {"algorithm": algorithm},
                },
            }
            for i in range(count)
        ]
        start = time.monotonic()
        apply(cluster, certs)
        applied = time.monotonic() - start
        wait(lambda: ready_count(kube, ns) == count, 900)
        total = time.monotonic() - start
        loaded = rss_mib(process.pid)
        # a no-op period: nothing must be re-issued
        time.sleep(5)
        revisions = [
            int((c.get("status") or {}).get("revision") or 0)
            for c in kube.list_objects(API, "Certificate", ns)
        ]
    finally:
        processes.stop(process)

    # peer: the same issuance + Secret writes in a tight loop, in this process
    peer_ns = "bench-peer"
    cluster.kubectl("create", "namespace", peer_ns)
    start = time.monotonic()
    for i in range(count):
        request = pki.CertRequest(dns_names=(f"p{i}.bench.test",), key=pki.KeySpec(algorithm))
        pair = pki.issue(request, ca, dt.datetime.now(dt.UTC))
        kube.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "kubernetes.io/tls",
                "metadata": {"name": f"p{i}-tls", "namespace": peer_ns},
                "data": {
                    "tls.crt": base64.b64encode(pair.cert_pem + ca.cert_pem).decode(),
                    "tls.key": base64.b64encode(pair.key_pem).decode(),
                    "ca.crt": base64.b64encode(ca.cert_pem).decode(),
                },
            },
            "bench",
        )
    peer = time.monotonic() - start
    return {
        "apply": applied,
        "all_ready": total,
        "peer": peer,
        "idle_rss": idle,
        "loaded_rss": loaded,
        "max_revision": float(max(revisions)),
    }


def bench_dns(cluster: KwokCluster, kube: KubeClient, work: Path, count: int) -> dict[str, float]:
    cluster.kubectl("apply", "--server-side", "-f", str(ROOT / "stacks/dns/manifests/10-crd.yaml"))
    cluster.kubectl("wait", "--for=condition=Established", "crd/dnsrecords.dns.platform.local")
    ns = "bench-dns"
    cluster.kubectl("create", "namespace", ns)
    process = processes.start(
        [
            PLATFORM,
            "run",
            "dns",
            "--kubeconfig",
            str(cluster.kubeconfig),
            "--domain",
            "bench.test",
            "--default-target",
            "10.43.0.80",
            "--configmap-namespace",
            ns,
            "--log-level",
            "WARNING",
        ],
        log=work / "dns.log",
    )
    try:
        time.sleep(3)
        idle = rss_mib(process.pid)
        ingresses = [
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "Ingress",
                "metadata": {"name": f"i{i}", "namespace": ns},
                "spec": {
                    "rules": [
                        {
                            "host": f"i{i}.bench.test",
                            "http": {
                                "paths": [
                                    {
                                        "path": "/",
                                        "pathType": "Prefix",
                                        "backend": {
                                            "service": {"name": "s", "port": {"number": 80}}
                                        },
                                    }
                                ]
                            },
                        }
                    ]
                },
            }
            for i in range(count)
        ]

        def entries() -> int:
            cm = kube.get("v1", "ConfigMap", "coredns-custom", ns) or {}
            return sum(
                1
                for line in ((cm.get("data") or {}).get(HOSTS_KEY) or "").splitlines()
                if "owner=platform-dns" in line
            )

        start = time.monotonic()
        apply(cluster, ingresses)
        wait(lambda: entries() == count, 600, 0.2)
        total = time.monotonic() - start
        loaded = rss_mib(process.pid)
    finally:
        processes.stop(process)
    return {"all_published": total, "idle_rss": idle, "loaded_rss": loaded}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--certs", type=int, default=500)
    parser.add_argument("--ingresses", type=int, default=500)
    parser.add_argument("--algorithm", default="RSA", choices=["RSA", "ECDSA"])
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="certs-bench-"))
    cluster = created_cluster("bench", work / "kwok")
    kube = KubeClient.from_kubeconfig(str(cluster.kubeconfig))
    try:
        certs = bench_certs(cluster, kube, work, args.certs, args.algorithm)
        dns = bench_dns(cluster, kube, work, args.ingresses)
    finally:
        kube.close()
        cluster.delete()
        if not processes.leaked():
            shutil.rmtree(work, ignore_errors=True)
    print(f"cpus: {os.cpu_count()}")
    print(
        f"certs: {args.certs} Certificates ({args.algorithm}, CA ClusterIssuer), kubectl apply {certs['apply']:.1f} s, create -> all Ready {certs['all_ready']:.1f} s ({args.certs / certs['all_ready']:.1f}/s)"
    )
    print(
        f"certs peer (in-process issue + SSA Secret loop): {certs['peer']:.1f} s; ratio ours/peer {certs['all_ready'] / certs['peer']:.2f}x"
    )
    print(f"certs: max revision after settling {certs['max_revision']:.0f} (1 = nothing re-issued)")
    print(
        f"certs RSS: idle {certs['idle_rss']:.0f} MiB, after {args.certs} certs {certs['loaded_rss']:.0f} MiB"
    )
    print(f"dns: {args.ingresses} Ingresses -> all hosts entries {dns['all_published']:.1f} s")
    print(
        f"dns RSS: idle {dns['idle_rss']:.0f} MiB, after {args.ingresses} ingresses {dns['loaded_rss']:.0f} MiB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
