"""Health of live Kubernetes objects: one function per kind, gitops-engine semantics.

`health_of(obj)` returns a `Health` (status + a message that reads like a progress
report) or None for kinds that have no notion of health (ConfigMap, Secret, ...).
`worst()` folds many into one, using Argo CD's order
Healthy < Suspended < Progressing < Missing < Degraded < Unknown.

Pure, no I/O. Called by the reconciler (wave gates, application health), the bootstrap
stages (waiting for components) and the CLI.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from stacks.kube.objects import KubeObject, condition_of, split_api_version


class HealthStatus(StrEnum):
    HEALTHY = "Healthy"
    SUSPENDED = "Suspended"
    PROGRESSING = "Progressing"
    MISSING = "Missing"
    DEGRADED = "Degraded"
    UNKNOWN = "Unknown"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {
    HealthStatus.HEALTHY: 0,
    HealthStatus.SUSPENDED: 1,
    HealthStatus.PROGRESSING: 2,
    HealthStatus.MISSING: 3,
    HealthStatus.DEGRADED: 4,
    HealthStatus.UNKNOWN: 5,
}


@dataclass(frozen=True)
class Health:
    status: HealthStatus
    message: str = ""

    @property
    def healthy(self) -> bool:
        return self.status is HealthStatus.HEALTHY


def healthy(message: str = "") -> Health:
    return Health(HealthStatus.HEALTHY, message)


def progressing(message: str) -> Health:
    return Health(HealthStatus.PROGRESSING, message)


def degraded(message: str) -> Health:
    return Health(HealthStatus.DEGRADED, message)


def worst(healths: Iterable[Health]) -> Health:
    """The most severe of `healths` (Healthy when there is none)."""
    result = Health(HealthStatus.HEALTHY, "")
    for item in healths:
        if item.status.severity > result.status.severity:
            result = item
    return result


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _spec(obj: KubeObject) -> dict[str, Any]:
    return dict(obj.get("spec") or {})


def _status(obj: KubeObject) -> dict[str, Any]:
    return dict(obj.get("status") or {})


def _generation_stale(obj: KubeObject) -> bool:
    generation = _int((obj.get("metadata") or {}).get("generation"))
    observed = _int(_status(obj).get("observedGeneration"))
    return generation > observed


# ---- workloads -------------------------------------------------------------------------


def deployment_health(obj: KubeObject) -> Health:
    spec, status = _spec(obj), _status(obj)
    name = (obj.get("metadata") or {}).get("name", "")
    if spec.get("paused"):
        return Health(HealthStatus.SUSPENDED, "Deployment is paused")
    if _generation_stale(obj):
        return progressing(
            "Waiting for rollout to finish: observed deployment generation less than desired generation"
        )
    cond = condition_of(obj, "Progressing")
    if cond is not None and cond.get("reason") == "ProgressDeadlineExceeded":
        return degraded(f"Deployment {name!r} exceeded its progress deadline")
    want = _int(spec.get("replicas", 1))
    updated = _int(status.get("updatedReplicas"))
    replicas = _int(status.get("replicas"))
    available = _int(status.get("availableReplicas"))
    if updated < want:
        return progressing(
            f"Waiting for rollout to finish: {updated} out of {want} new replicas have been updated..."
        )
    if replicas > updated:
        return progressing(
            f"Waiting for rollout to finish: {replicas - updated} old replicas are pending termination..."
        )
    if available < updated:
        return progressing(
            f"Waiting for rollout to finish: {available} of {updated} updated replicas are available..."
        )
    return healthy(f"Deployment {name!r} successfully rolled out")


def statefulset_health(obj: KubeObject) -> Health:
    spec, status = _spec(obj), _status(obj)
    if _int(status.get("observedGeneration")) == 0 or _generation_stale(obj):
        return progressing("Waiting for statefulset spec update to be observed...")
    want = _int(spec.get("replicas", 1))
    ready = _int(status.get("readyReplicas"))
    if ready < want:
        return progressing(f"Waiting for {want - ready} pods to be ready...")
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type") == "OnDelete":
        return healthy(f"statefulset has {ready} ready pods")
    rolling = strategy.get("rollingUpdate") or {}
    if strategy.get("type", "RollingUpdate") == "RollingUpdate" and rolling.get("partition"):
        partition = _int(rolling.get("partition"))
        if _int(status.get("updatedReplicas")) < want - partition:
            return progressing(
                f"Waiting for partitioned roll out to finish: {_int(status.get('updatedReplicas'))} out of {want - partition} new pods have been updated..."
            )
        return healthy(
            f"partitioned roll out complete: {_int(status.get('updatedReplicas'))} new pods have been updated..."
        )
    if status.get("updateRevision") != status.get("currentRevision"):
        return progressing(
            f"waiting for statefulset rolling update to complete {_int(status.get('updatedReplicas'))} pods at revision {status.get('updateRevision')}..."
        )
    return healthy(
        f"statefulset rolling update complete {ready} pods at revision {status.get('currentRevision')}..."
    )


def daemonset_health(obj: KubeObject) -> Health:
    spec, status = _spec(obj), _status(obj)
    if _generation_stale(obj):
        return progressing(
            "Waiting for rollout to finish: observed daemon set generation less than desired generation"
        )
    if (spec.get("updateStrategy") or {}).get("type") == "OnDelete":
        return healthy(
            f"daemon set {_int(status.get('currentNumberScheduled'))} out of {_int(status.get('desiredNumberScheduled'))} new pods have been updated"
        )
    desired = _int(status.get("desiredNumberScheduled"))
    updated = _int(status.get("updatedNumberScheduled"))
    available = _int(status.get("numberAvailable"))
    if updated < desired:
        return progressing(
            f"Waiting for daemon set rollout to finish: {updated} out of {desired} new pods have been updated..."
        )
    if available < desired:
        return progressing(
            f"Waiting for daemon set rollout to finish: {available} of {desired} updated pods are available..."
        )
    return healthy(f"daemon set {available} of {desired} updated pods are available")


def job_health(obj: KubeObject) -> Health:
    for cond in _status(obj).get("conditions") or []:
        if cond.get("status") != "True":
            continue
        if cond.get("type") == "Failed":
            return degraded(
                f"Job failed: {cond.get('message') or cond.get('reason') or 'no reason given'}"
            )
        if cond.get("type") == "Complete":
            return healthy(f"Job completed: {cond.get('message') or 'succeeded'}")
        if cond.get("type") == "Suspended":
            return Health(
                HealthStatus.SUSPENDED,
                f"Job is suspended: {cond.get('message') or ''}".rstrip(": "),
            )
    return progressing(
        f"Job running: {_int(_status(obj).get('active'))} active, {_int(_status(obj).get('succeeded'))} succeeded"
    )


def pod_health(obj: KubeObject) -> Health:
    phase = _status(obj).get("phase", "")
    if phase == "Succeeded":
        return healthy("Pod completed")
    if phase == "Failed":
        return degraded(
            f"Pod failed: {_status(obj).get('message') or _status(obj).get('reason') or ''}"
        )
    if phase == "Running":
        ready = condition_of(obj, "Ready")
        if ready is not None and ready.get("status") == "True":
            return healthy("Pod is running and ready")
        return progressing("Waiting for pod to become ready")
    return progressing(f"Pod is {phase or 'Pending'}")


# ---- networking and storage ------------------------------------------------------------


def service_health(obj: KubeObject) -> Health:
    if _spec(obj).get("type") == "LoadBalancer":
        if (_status(obj).get("loadBalancer") or {}).get("ingress"):
            return healthy("load balancer has an address")
        return progressing("Waiting for the load balancer to publish an address")
    return healthy("")


def ingress_health(obj: KubeObject) -> Health:
    if (_status(obj).get("loadBalancer") or {}).get("ingress"):
        return healthy("ingress has an address")
    return progressing("Waiting for the ingress controller to publish an address")


def pvc_health(obj: KubeObject) -> Health:
    phase = _status(obj).get("phase", "")
    if phase == "Bound":
        return healthy("claim is bound")
    if phase == "Lost":
        return degraded("claim lost its volume")
    return progressing(
        "Waiting for the claim to be bound (a WaitForFirstConsumer class binds when a pod uses it)"
    )


def crd_health(obj: KubeObject) -> Health:
    cond = condition_of(obj, "Established")
    if cond is not None and cond.get("status") == "True":
        return healthy("CRD is established")
    return progressing("Waiting for the CRD to be established")


def apiservice_health(obj: KubeObject) -> Health:
    cond = condition_of(obj, "Available")
    if cond is not None and cond.get("status") == "True":
        return healthy("APIService is available")
    return progressing(
        f"Waiting for the APIService: {(cond or {}).get('message', 'not available yet')}"
    )


# ---- our own kinds and custom resources -------------------------------------------------


def application_health(obj: KubeObject) -> Health:
    """A child Application's health is what its reconciler reported (app-of-apps waves)."""
    status = _status(obj)
    if _generation_stale(obj):
        return progressing("Waiting for the reconciler to sync this Application")
    reported = status.get("health") or {}
    value = reported.get("status")
    if not value:
        return progressing("Waiting for the first sync")
    try:
        state = HealthStatus(value)
    except ValueError:
        return Health(HealthStatus.UNKNOWN, f"unknown health {value!r}")
    if state is HealthStatus.MISSING:  # a child with nothing live yet is still starting
        return progressing(reported.get("message") or "Waiting for its objects to be created")
    return Health(state, str(reported.get("message") or ""))


def custom_resource_health(obj: KubeObject) -> Health | None:
    """kstatus-like: a Ready condition decides; no Ready condition means no health."""
    ready = condition_of(obj, "Ready")
    if ready is None:
        return None
    message = str(ready.get("message") or ready.get("reason") or "")
    if _generation_stale(obj) and "observedGeneration" in _status(obj):
        return progressing("Waiting for the controller to observe the latest generation")
    if ready.get("status") == "True":
        return healthy(message)
    reconciling = condition_of(obj, "Reconciling")
    if ready.get("status") == "Unknown" or (
        reconciling is not None and reconciling.get("status") == "True"
    ):
        return progressing(message or "Reconciling")
    return degraded(message or "Ready is False")


HealthFunc = Callable[[KubeObject], Health]

BY_KIND: dict[tuple[str, str], HealthFunc] = {
    ("apps", "Deployment"): deployment_health,
    ("apps", "StatefulSet"): statefulset_health,
    ("apps", "DaemonSet"): daemonset_health,
    ("batch", "Job"): job_health,
    ("", "Pod"): pod_health,
    ("", "Service"): service_health,
    ("networking.k8s.io", "Ingress"): ingress_health,
    ("", "PersistentVolumeClaim"): pvc_health,
    ("apiextensions.k8s.io", "CustomResourceDefinition"): crd_health,
    ("apiregistration.k8s.io", "APIService"): apiservice_health,
    ("gitops.platform.local", "Application"): application_health,
}

NO_HEALTH_GROUPS = frozenset(
    {
        "",
        "apps",
        "batch",
        "rbac.authorization.k8s.io",
        "policy",
        "networking.k8s.io",
        "storage.k8s.io",
        "coordination.k8s.io",
        "autoscaling",
        "scheduling.k8s.io",
        "admissionregistration.k8s.io",
    }
)


def health_of(obj: KubeObject) -> Health | None:
    """The health of one live object, or None when its kind has no health."""
    if (obj.get("metadata") or {}).get("deletionTimestamp"):
        return progressing("Pending deletion")
    group, _ = split_api_version(str(obj.get("apiVersion", "")))
    func = BY_KIND.get((group, str(obj.get("kind", ""))))
    if func is not None:
        return func(obj)
    if group in NO_HEALTH_GROUPS:
        return None
    return custom_resource_health(obj)
