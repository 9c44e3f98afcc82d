"""Health of kinds users ship, as the real control plane reports them (issue 14): an
HPA gets its conditions from the real kube-controller-manager (in autoscaling/v1 through
the conditions annotation), and kwok runs a bare Pod with restartPolicy Never, which
Argo CD calls Progressing until it has Succeeded.
"""

from __future__ import annotations

from typing import Any

import pytest

from stacks.kube.client import KubeClient
from tests.integration.reconciler.conftest import (
    Apps,
    GitRepo,
    Reconciler,
    deployment,
    wait_until,
)

pytestmark = pytest.mark.integration


def _hpa(api_version: str, name: str, target: str) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
        "minReplicas": 1,
        "maxReplicas": 3,
    }
    if api_version == "autoscaling/v1":
        spec["targetCPUUtilizationPercentage"] = 80
    else:
        spec["metrics"] = [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 80},
                },
            }
        ]
    return {
        "apiVersion": api_version,
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name},
        "spec": spec,
    }


def _resource(obj: dict[str, Any], kind: str, name: str) -> dict[str, Any]:
    for item in (obj.get("status") or {}).get("resources") or []:
        if item.get("kind") == kind and item.get("name") == name:
            return dict(item)
    return {}


def test_hpas_of_every_served_version_have_health(
    reconciler: Reconciler, repo: GitRepo, apps: Apps
) -> None:
    repo.write(
        "scaled/all.yaml",
        [
            deployment("web"),
            _hpa("autoscaling/v1", "web-v1", "web"),
            _hpa("autoscaling/v2", "web-v2", "web"),
        ],
    )
    repo.commit()
    apps.create("scaled", "scaled")

    def both_judged(obj: dict[str, Any]) -> bool:
        found = [
            _resource(obj, "HorizontalPodAutoscaler", n).get("health", {}).get("status")
            for n in ("web-v1", "web-v2")
        ]
        return all(s in ("Healthy", "Degraded") for s in found)

    # The HPA controller reports AbleToScale first (and, without a metrics server,
    # ScalingActive False): gitops-engine reads them in order, so the HPA is Healthy.
    obj = apps.wait("scaled", both_judged, "both HPAs to have a health", timeout=60)
    for name in ("web-v1", "web-v2"):
        health = _resource(obj, "HorizontalPodAutoscaler", name)["health"]
        assert health["status"] == "Healthy", (name, health)


def test_a_running_pod_that_never_restarts_is_progressing(
    reconciler: Reconciler, repo: GitRepo, apps: Apps, kube: KubeClient, namespace: str
) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "once"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "app", "image": "registry.example/app:1"}],
            "tolerations": [
                {"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}
            ],
        },
    }
    repo.write("finite/pod.yaml", pod)
    repo.commit()
    apps.create("finite", "finite")

    def running() -> bool:
        live = kube.get("v1", "Pod", "once", namespace) or {}
        return (live.get("status") or {}).get("phase") == "Running"

    wait_until(running, "kwok to run the pod", timeout=60)
    # A refresh handled after that is a reconcile that saw the running pod.
    apps.annotate("finite", **{"gitops.platform.local/refresh": "after-running"})
    obj = apps.wait(
        "finite",
        lambda o: (o.get("status") or {}).get("lastHandledRefresh") == "after-running",
        "the refresh to be handled",
    )
    # kwok runs it (Running, Ready); it has not Succeeded, so it is not done.
    health = _resource(obj, "Pod", "once")["health"]
    assert health["status"] == "Progressing", health
    assert obj["status"]["health"]["status"] == "Progressing"
