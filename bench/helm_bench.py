"""Benchmark a Helm chart's render and sync against `helm template | kubectl apply
--server-side` of the same chart, in one run (issue 18).

    .venv/bin/python bench/helm_bench.py [--objects 50] [--rounds 5]

One kwokctl cluster (real kube-apiserver and etcd), a chart repository on 127.0.0.1
(`helm package` + `helm repo index`, served by a Python http.server thread) holding one
chart of `--objects` objects (ConfigMaps, Services, ServiceAccounts), and `platform run
reconciler` as a subprocess with the testenv-built helm and kustomize.

Each round, in fresh namespaces:
- ours: creating the Application (repoURL = the chart repository, chart, targetRevision)
  until its status says Synced and Ready at the chart version: chart fetch (the first
  round; the cache serves the rest), `helm template`, parse, apply, status;
- peer: `helm template --repo URL CHART --version V | kubectl apply --server-side -f -`
  (wall time of the pipeline; it downloads the chart every time).
Medians of `--rounds`; goal ours/peer <= 1.5. Results go in bench/README.md, section
"## Reconciler", "### Helm chart (issue 18)".
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from stacks.kube.client import KubeClient  # noqa: E402
from stacks.reconciler.api import API_VERSION, KIND  # noqa: E402
from tests.integration.reconciler.charts import (  # noqa: E402
    chart_repository,
    package,
    write_chart,
)
from tests.support import processes  # noqa: E402
from tests.support.binaries import require_binary  # noqa: E402
from tests.support.cli import PLATFORM  # noqa: E402
from tests.support.kwok import created_cluster  # noqa: E402

TEMPLATES = {
    "configmaps.yaml": (
        "{{- range $i := until (int .Values.configmaps) }}\n---\napiVersion: v1\n"
        "kind: ConfigMap\nmetadata:\n  name: {{ $.Release.Name }}-cm-{{ $i }}\n"
        "data:\n  index: {{ $i | quote }}\n  greeting: {{ $.Values.greeting | quote }}\n"
        "{{- end }}\n"
    ),
    "services.yaml": (
        "{{- range $i := until (int .Values.services) }}\n---\napiVersion: v1\nkind: Service\n"
        "metadata:\n  name: {{ $.Release.Name }}-svc-{{ $i }}\nspec:\n"
        "  selector: {app: {{ $.Release.Name }}-{{ $i }}}\n"
        "  ports: [{port: 80, targetPort: 8080}]\n{{- end }}\n"
    ),
    "serviceaccounts.yaml": (
        "{{- range $i := until (int .Values.serviceaccounts) }}\n---\napiVersion: v1\n"
        "kind: ServiceAccount\nmetadata:\n  name: {{ $.Release.Name }}-sa-{{ $i }}\n{{- end }}\n"
    ),
}


def _synced(kube: KubeClient, namespace: str, name: str, version: str) -> bool:
    obj = kube.get(API_VERSION, KIND, name, namespace) or {}
    status = obj.get("status") or {}
    ready = [c for c in status.get("conditions") or [] if c.get("type") == "Ready"]
    return (
        status.get("lastAppliedRevision") == version
        and bool(ready)
        and ready[0]["status"] == "True"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    helm = require_binary("helm")
    kustomize = require_binary("kustomize")
    kubectl = require_binary("kubectl")
    work = Path(tempfile.mkdtemp(prefix="helm-bench-"))
    services = max(args.objects * 3 // 10, 1)
    accounts = max(args.objects // 5, 1)
    configmaps = max(args.objects - services - accounts, 1)
    values = f"greeting: hello\nconfigmaps: {configmaps}\nservices: {services}\nserviceaccounts: {accounts}\n"
    chart = write_chart(work / "chart" / "bench", "bench", "1.0.0", TEMPLATES, values=values)
    package(helm, chart, work / "served")

    cluster = created_cluster("helm-bench", work / "kwok")
    kube = KubeClient.from_kubeconfig(str(cluster.kubeconfig))
    reconciler: subprocess.Popen[bytes] | None = None
    results: dict[str, Any] = {"objects": configmaps + services + accounts, "rounds": args.rounds}
    try:
        cluster.kubectl(
            "apply", "--server-side", "-f", str(ROOT / "stacks/reconciler/manifests/10-crd.yaml")
        )
        cluster.kubectl(
            "wait", "--for=condition=Established", "crd/applications.gitops.platform.local"
        )
        cluster.kubectl("create", "namespace", "bench-apps")
        port = processes.free_port()
        reconciler = processes.start(
            [
                PLATFORM,
                "run",
                "reconciler",
                f"--kubeconfig={cluster.kubeconfig}",
                "--watch-namespace=bench-apps",
                "--no-leader-elect",
                "--no-projects",  # as the reconciler bench: no AppProject in the way
                f"--listen=127.0.0.1:{port}",
                f"--cache-dir={work / 'cache'}",
            ],
            work / "reconciler.log",
            env={
                "PLATFORM_RECONCILER_HELM": str(helm),
                "PLATFORM_RECONCILER_KUSTOMIZE": str(kustomize),
            },
        )
        time.sleep(2)
        ours: list[float] = []
        peer: list[float] = []
        with chart_repository(helm, work / "served") as url:
            for round_ in range(args.rounds):
                for ns in (f"ours-{round_}", f"peer-{round_}"):
                    cluster.kubectl("create", "namespace", ns)
                name = f"bench-{round_}"
                started = time.monotonic()
                kube.create(
                    {
                        "apiVersion": API_VERSION,
                        "kind": KIND,
                        "metadata": {"name": name, "namespace": "bench-apps"},
                        "spec": {
                            "source": {
                                "repoURL": url,
                                "chart": "bench",
                                "targetRevision": "1.0.0",
                                "helm": {"releaseName": "rel"},
                            },
                            "destination": {"namespace": f"ours-{round_}"},
                            "syncPolicy": {"automated": {"prune": True}},
                        },
                    }
                )
                processes.wait_for(
                    lambda name=name: _synced(kube, "bench-apps", name, "1.0.0"),  # type: ignore[misc]
                    timeout=120,
                    what=f"{name} synced",
                    interval=0.02,
                )
                ours.append(time.monotonic() - started)
                started = time.monotonic()
                env = {"HOME": str(work), "PATH": "/usr/bin:/bin"}
                template = subprocess.Popen(
                    [
                        str(helm),
                        "template",
                        "rel",
                        "bench",
                        "--repo",
                        url,
                        "--version",
                        "1.0.0",
                        "--namespace",
                        f"peer-{round_}",
                    ],
                    stdout=subprocess.PIPE,
                    env=env,
                )
                subprocess.run(
                    [
                        str(kubectl),
                        "--kubeconfig",
                        str(cluster.kubeconfig),
                        "apply",
                        "--server-side",
                        "-n",
                        f"peer-{round_}",
                        "-f",
                        "-",
                    ],
                    stdin=template.stdout,
                    stdout=subprocess.DEVNULL,
                    check=True,
                    env=env,
                )
                if template.stdout is not None:
                    template.stdout.close()
                assert template.wait() == 0, "helm template failed"
                peer.append(time.monotonic() - started)
                count = len(kube.list_objects("v1", "ConfigMap", f"ours-{round_}"))
                assert count >= configmaps, f"only {count} ConfigMaps synced"
        results.update(
            {
                "ours_s": [round(x, 3) for x in ours],
                "peer_s": [round(x, 3) for x in peer],
                "ours_median_s": round(statistics.median(ours), 3),
                "peer_median_s": round(statistics.median(peer), 3),
                "ratio": round(statistics.median(ours) / statistics.median(peer), 2),
            }
        )
        print(json.dumps(results, indent=1))
    finally:
        if reconciler is not None:
            processes.stop(reconciler)
        kube.close()
        cluster.delete()
    return 0


if __name__ == "__main__":
    sys.exit(main())
