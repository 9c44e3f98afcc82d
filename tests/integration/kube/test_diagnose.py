"""`why_not_ready` against the real control plane: the causes it reports are made by the
real kube-scheduler (a selector no node matches, a claim without a volume), the real PV
controller (its FailedBinding event), the real ResourceQuota admission and the real
ReplicaSet and StatefulSet controllers (their FailedCreate events). kwok plays the
kubelet, so a workload without a problem really becomes ready."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from stacks.kube.client import KubeClient
from stacks.kube.diagnose import why_not_ready, with_cause
from tests.support.kwok import KwokCluster

pytestmark = pytest.mark.integration


def workload(kind: str, name: str, pod_spec: dict[str, Any]) -> dict[str, Any]:
    labels = {"app": name}
    spec: dict[str, Any] = {
        "replicas": 1,
        "selector": {"matchLabels": labels},
        "template": {"metadata": {"labels": labels}, "spec": pod_spec},
    }
    if kind == "StatefulSet":
        spec["serviceName"] = name
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def pod_spec(**extra: Any) -> dict[str, Any]:
    return {"containers": [{"name": "main", "image": "example.test/app:1"}], **extra}


def apply(cluster: KwokCluster, namespace: str, *objects: dict[str, Any]) -> None:
    document = {"apiVersion": "v1", "kind": "List", "items": list(objects)}
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(document))


def diagnosis_until(
    kube: KubeClient, namespace: str, kind: str, name: str, *needles: str, timeout: float = 60
) -> str:
    """Poll the diagnosis of `kind/name` until it holds every needle; return it."""
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        live = kube.get("apps/v1", kind, name, namespace)
        text = why_not_ready(kube, live) if live else ""
        if all(needle in text for needle in needles):
            return text
        time.sleep(0.5)
    raise AssertionError(f"after {timeout:.0f}s the diagnosis of {kind} {name} is {text!r}")


def test_a_claim_without_a_volume_names_the_claim_and_the_missing_storage_class(
    cluster: KwokCluster, kube: KubeClient, namespace: str
) -> None:
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    volumes = [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]
    apply(cluster, namespace, claim, workload("Deployment", "stored", pod_spec(volumes=volumes)))
    text = diagnosis_until(
        kube,
        namespace,
        "Deployment",
        "stored",
        "PersistentVolumeClaim 'data' is Pending",
        # the PV controller's own event
        "no persistent volumes available for this claim and no storage class is set",
    )
    assert "the cluster has no default StorageClass" in text
    # the claim is the cause; the scheduler's consequence is not what is reported
    assert "cannot be scheduled" not in text


def test_a_pod_no_node_accepts_gets_the_schedulers_reason(
    cluster: KwokCluster, kube: KubeClient, namespace: str
) -> None:
    spec = pod_spec(nodeSelector={"platform.test/never": "true"})
    apply(cluster, namespace, workload("Deployment", "homeless", spec))
    text = diagnosis_until(kube, namespace, "Deployment", "homeless", "cannot be scheduled")
    assert text.startswith("pod 'homeless-")
    assert "didn't match Pod's node affinity/selector" in text


def test_pods_the_api_refuses_are_explained_by_their_controllers_events(
    cluster: KwokCluster, kube: KubeClient, namespace: str
) -> None:
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "no-pods"},
        "spec": {"hard": {"pods": "0"}},
    }
    apply(cluster, namespace, quota)
    apply(
        cluster,
        namespace,
        workload("Deployment", "refused", pod_spec()),
        workload("StatefulSet", "refused-set", pod_spec()),
    )
    deployment = diagnosis_until(
        kube, namespace, "Deployment", "refused", "no pod was created", "forbidden"
    )
    assert "exceeded quota: no-pods" in deployment
    stateful = diagnosis_until(
        kube, namespace, "StatefulSet", "refused-set", "no pod was created", "forbidden"
    )
    assert "refused-set-0" in stateful and "exceeded quota: no-pods" in stateful


def test_a_workload_that_becomes_ready_has_no_cause(
    cluster: KwokCluster, kube: KubeClient, namespace: str
) -> None:
    apply(cluster, namespace, workload("Deployment", "fine", pod_spec()))
    cluster.kubectl("rollout", "status", "-n", namespace, "deployment/fine", "--timeout=60s")
    live = kube.get("apps/v1", "Deployment", "fine", namespace)
    assert live is not None
    assert why_not_ready(kube, live) == ""
    assert with_cause("waiting: 1/1", kube, live) == "waiting: 1/1"
    assert with_cause("waiting: not created", kube, None) == "waiting: not created"


def test_waiting_for_an_application_adds_the_cause_of_its_unhealthy_workload(
    cluster: KwokCluster, kube: KubeClient, namespace: str
) -> None:
    """The bootstrap's wait for GitOps (bootstrap/stages/appwait.py): the Application's
    status (as the reconciler writes it) names the workload; the cause comes from the
    cluster."""
    from bootstrap.stages.appwait import app_problem, explained

    spec = pod_spec(nodeSelector={"platform.test/never": "true"})
    apply(cluster, namespace, workload("Deployment", "stuck", spec))
    health = {"status": "Progressing", "message": "Waiting for rollout to finish"}
    app = {
        "metadata": {"name": "demo"},
        "status": {
            "sync": {"status": "Synced"},
            "health": health,
            "resources": [
                {"group": "", "kind": "ConfigMap", "namespace": namespace, "name": "c"},
                {
                    "group": "apps",
                    "version": "v1",
                    "kind": "Deployment",
                    "namespace": namespace,
                    "name": "stuck",
                    "health": health,
                },
            ],
        },
    }
    problem = app_problem(app, "demo")
    assert problem == (
        f"Application demo is Synced/Progressing: Deployment {namespace}/stuck is Progressing: "
        "Waiting for rollout to finish"
    )
    deadline = time.monotonic() + 60
    text = explained(kube, app, problem)
    while "cannot be scheduled" not in text and time.monotonic() < deadline:
        time.sleep(0.5)
        text = explained(kube, app, problem)
    assert text.startswith(problem + "; pod 'stuck-"), text
    assert "didn't match Pod's node affinity/selector" in text
    assert explained(kube, app, "") == ""  # a ready app stays ready
