"""Health of live Kubernetes objects: one function per kind, gitops-engine semantics.

`health_of(obj)` returns a `Health` (status + a message that reads like a progress
report) or None for kinds that have no notion of health (ConfigMap, Secret, ...).
`worst()` folds many into one, using Argo CD's order
Healthy < Suspended < Progressing < Missing < Degraded < Unknown.

Kind by kind, against gitops-engine `pkg/health/*.go` and Argo CD's built-in Lua checks
(`resource_customizations/`); messages are our own wording:
- any kind being deleted: Progressing, as Argo CD.
- Deployment, StatefulSet, DaemonSet, ReplicaSet: as gitops-engine (paused, stale
  generation, progress deadline, updated/ready/available counts; a StatefulSet with a
  rollingUpdate block, which the API server always defaults, is judged by its updated
  count against replicas minus partition, not by currentRevision). An unset
  `spec.replicas` counts as 1, the API server's default (gitops-engine skips the check,
  which only differs for objects that never went through the API server).
- Pod: as gitops-engine. With restartPolicy Always, a container waiting with a reason
  `Err*`, `*Error` or `*BackOff` (CrashLoopBackOff, ImagePullBackOff, ErrImagePull,
  CreateContainerConfigError) is Degraded, and a Running pod that is not ready while a
  container has terminated before is Degraded. Running with restartPolicy OnFailure or
  Never is Progressing (a finite pod is done when it Succeeds). Failed is Degraded with
  the pod's message, else the first container's termination message, OOMKilled or exit
  code. An unknown phase is Unknown.
- Job: as Argo CD (Failed wins, then Complete, Suspended=True is Suspended), except a
  Job whose Suspended condition is False (resumed and running again): gitops-engine
  counts any Suspended condition as finished and says Healthy; we say Progressing until
  it completes or fails, or a wave would go on before the Job has run.
- CronJob: Argo CD's built-in Lua check (gitops-engine has none): suspended is
  Suspended; scheduled and never succeeded is Healthy (it may just not have finished);
  running jobs are Healthy; last success older than last schedule with nothing running
  is Degraded; never scheduled is Healthy; no status yet is Progressing.
- HorizontalPodAutoscaler (autoscaling v1, v2beta1, v2beta2, v2): as gitops-engine. The
  conditions (for v1 the `autoscaling.alpha.kubernetes.io/conditions` annotation, which
  is how the API server serves them in v1) are read in order: AbleToScale with reason
  FailedGetScale/FailedUpdateScale or ScalingActive with FailedGetResourceMetric/
  InvalidSelector is Degraded; AbleToScale or ScalingLimited True is Healthy; none of
  those is Progressing "Waiting to Autoscale".
- PersistentVolumeClaim: Bound Healthy, Pending Progressing, Lost Degraded, anything
  else Unknown, as gitops-engine.
- Service: Healthy, except type LoadBalancer without `status.loadBalancer.ingress`
  (Progressing). Ingress (networking.k8s.io and extensions): Healthy once
  `status.loadBalancer.ingress` is set, else Progressing (never Degraded).
- APIService: the Available condition True is Healthy, anything else (or no condition)
  Progressing, as gitops-engine.
Where we differ on purpose (kinds gitops-engine leaves without health):
- CustomResourceDefinition: Progressing until Established, so a wave of custom
  resources never starts before the API server serves their kind.
- Application (ours, app-of-apps): Argo CD has no built-in check since 1.8 and documents
  a Lua check that copies `status.health`; we copy it too, but a child whose spec the
  reconciler has not observed yet, or that reports Missing (nothing created yet), is
  Progressing, so a wave waits for its child Applications instead of passing them.
- Other custom resources: a `Ready` condition decides (kstatus/Flux-like); without one
  they have no health, as in Argo CD.

Pure, no I/O. Called by the reconciler (wave gates, application health), the bootstrap
stages (waiting for components) and the CLI.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from stacks.kube.objects import KubeObject, annotations_of, condition_of, split_api_version


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
    kind = strategy.get("type", "RollingUpdate")
    updated = _int(status.get("updatedReplicas"))
    rolling = strategy.get("rollingUpdate")
    if kind == "RollingUpdate" and rolling is not None:
        # The API server defaults rollingUpdate.partition to 0, so this is the usual path.
        partition = _int((rolling or {}).get("partition"))
        if updated < want - partition:
            return progressing(
                f"Waiting for partitioned roll out to finish: {updated} out of {want - partition} new pods have been updated..."
            )
        return healthy(f"partitioned roll out complete: {updated} new pods have been updated...")
    if kind == "OnDelete":
        return healthy(f"statefulset has {ready} ready pods")
    if status.get("updateRevision") != status.get("currentRevision"):
        return progressing(
            f"waiting for statefulset rolling update to complete {updated} pods at revision {status.get('updateRevision')}..."
        )
    return healthy(
        f"statefulset rolling update complete {_int(status.get('currentReplicas'))} pods at revision {status.get('currentRevision')}..."
    )


def daemonset_health(obj: KubeObject) -> Health:
    spec, status = _spec(obj), _status(obj)
    if _generation_stale(obj):
        return progressing(
            "Waiting for rollout to finish: observed daemon set generation less than desired generation"
        )
    if (spec.get("updateStrategy") or {}).get("type") == "OnDelete":
        return healthy(
            f"daemon set {_int(status.get('updatedNumberScheduled'))} out of {_int(status.get('desiredNumberScheduled'))} new pods have been updated"
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


def replicaset_health(obj: KubeObject) -> Health:
    spec, status = _spec(obj), _status(obj)
    if _generation_stale(obj):
        return progressing(
            "Waiting for rollout to finish: observed replica set generation less than desired generation"
        )
    failure = condition_of(obj, "ReplicaFailure")
    if failure is not None and failure.get("status") == "True":
        return degraded(str(failure.get("message") or failure.get("reason") or "replica failure"))
    want = _int(spec.get("replicas", 1))
    available = _int(status.get("availableReplicas"))
    if available < want:
        return progressing(
            f"Waiting for rollout to finish: {available} out of {want} new replicas are available..."
        )
    return healthy(f"{available} replicas available")


def job_health(obj: KubeObject) -> Health:
    found = {str(c.get("type")): c for c in _status(obj).get("conditions") or [] if c.get("type")}
    failed, complete, suspended = found.get("Failed"), found.get("Complete"), found.get("Suspended")
    if failed is not None and failed.get("status") == "True":  # Failed wins, as in Argo CD
        return degraded(
            f"Job failed: {failed.get('message') or failed.get('reason') or 'no reason given'}"
        )
    if complete is not None and complete.get("status") == "True":
        return healthy(f"Job completed: {complete.get('message') or 'succeeded'}")
    if suspended is not None and suspended.get("status") == "True":
        return Health(
            HealthStatus.SUSPENDED,
            f"Job is suspended: {suspended.get('message') or ''}".rstrip(": "),
        )
    return progressing(
        f"Job running: {_int(_status(obj).get('active'))} active, {_int(_status(obj).get('succeeded'))} succeeded"
    )


def cronjob_health(obj: KubeObject) -> Health:
    """Argo CD's built-in Lua check for batch/CronJob. The times are RFC 3339 UTC
    strings from the API server, so comparing them as strings orders them."""
    if _spec(obj).get("suspend") is True:
        return Health(HealthStatus.SUSPENDED, "CronJob is suspended")
    if "status" not in obj or obj.get("status") is None:
        return progressing("Waiting for CronJob")
    status = _status(obj)
    scheduled = status.get("lastScheduleTime")
    if not scheduled:
        return healthy("CronJob has not been scheduled yet")
    succeeded = status.get("lastSuccessfulTime")
    if not succeeded:
        return healthy("CronJob has never completed successfully yet; it may not be healthy")
    if status.get("active"):
        return healthy("CronJob is running a job; its last run may not have succeeded")
    if str(succeeded) < str(scheduled):
        return degraded("CronJob did not complete its last run successfully")
    return healthy("CronJob completed its last run successfully")


# Waiting reasons that mean a container cannot start (CrashLoopBackOff, ImagePullBackOff,
# ErrImagePull, CreateContainerConfigError, ...), as gitops-engine matches them.
def _stuck(reason: str) -> bool:
    return reason.startswith("Err") or reason.endswith("Error") or reason.endswith("BackOff")


def _termination(container: dict[str, Any]) -> str:
    terminated = (container.get("state") or {}).get("terminated") or {}
    if not terminated:
        return ""
    if terminated.get("message"):
        return str(terminated["message"])
    if terminated.get("reason") == "OOMKilled":
        return f"container {container.get('name', '')!r} was OOMKilled"
    code = _int(terminated.get("exitCode"))
    if code:
        return f"container {container.get('name', '')!r} failed with exit code {code}"
    return ""


def pod_health(obj: KubeObject) -> Health:
    spec, status = _spec(obj), _status(obj)
    policy = spec.get("restartPolicy") or "Always"
    containers = list(status.get("containerStatuses") or [])
    message = str(status.get("message") or "")
    # Only for restartPolicy Always: a finite pod (a hook, a job's pod) that cannot pull
    # its image yet may still run once it can, so it is not failed yet.
    if policy == "Always":
        stuck = []
        for container in containers:
            waiting = (container.get("state") or {}).get("waiting") or {}
            reason = str(waiting.get("reason") or "")
            if _stuck(reason):
                detail = str(waiting.get("message") or "").strip()
                stuck.append(
                    f"container {container.get('name', '')!r} {reason}"
                    + (f": {detail}" if detail else "")
                )
        if stuck:
            return degraded("; ".join(stuck))
    phase = status.get("phase", "")
    if phase == "Pending":
        return progressing(message or "Pod is Pending")
    if phase == "Succeeded":
        return healthy(message or "Pod completed")
    if phase == "Failed":
        if message:
            return degraded(f"Pod failed: {message}")
        for container in [*(status.get("initContainerStatuses") or []), *containers]:
            why = _termination(container)
            if why:
                return degraded(f"Pod failed: {why}")
        return degraded("Pod failed")
    if phase == "Running":
        if policy != "Always":
            return progressing(message or f"Pod is running (restartPolicy {policy})")
        ready = condition_of(obj, "Ready")
        if ready is not None and ready.get("status") == "True":
            return healthy(message or "Pod is running and ready")
        for container in containers:
            if (container.get("lastState") or {}).get("terminated"):
                return degraded(
                    message
                    or f"container {container.get('name', '')!r} terminated and the pod is not ready"
                )
        return progressing(message or "Waiting for pod to become ready")
    return Health(HealthStatus.UNKNOWN, message or f"Pod phase is {phase or 'not reported'}")


def hpa_health(obj: KubeObject) -> Health:
    """gitops-engine's check for every autoscaling version; v1 serves the conditions as
    a JSON annotation."""
    conditions: list[dict[str, Any]]
    if str(obj.get("apiVersion", "")) == "autoscaling/v1":
        text = annotations_of(obj).get(HPA_V1_CONDITIONS)
        if not text:
            return progressing(HPA_WAITING)
        try:
            parsed = json.loads(text)
        except ValueError:
            return Health(HealthStatus.UNKNOWN, f"cannot read the {HPA_V1_CONDITIONS} annotation")
        conditions = [c for c in parsed if isinstance(c, dict)] if isinstance(parsed, list) else []
    else:
        conditions = list(_status(obj).get("conditions") or [])
    for cond in conditions:
        pair = (str(cond.get("type", "")), str(cond.get("reason", "")))
        if pair in HPA_DEGRADED:
            return degraded(str(cond.get("message") or cond.get("reason")))
        if pair[0] in ("AbleToScale", "ScalingLimited") and cond.get("status") == "True":
            return healthy(str(cond.get("message") or ""))
    return progressing(HPA_WAITING)


HPA_V1_CONDITIONS = "autoscaling.alpha.kubernetes.io/conditions"
HPA_WAITING = "Waiting to Autoscale"
HPA_DEGRADED = frozenset(
    {
        ("AbleToScale", "FailedGetScale"),
        ("AbleToScale", "FailedUpdateScale"),
        ("ScalingActive", "FailedGetResourceMetric"),
        ("ScalingActive", "InvalidSelector"),
    }
)


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
    if phase == "Pending":
        return progressing(
            "Waiting for the claim to be bound (a WaitForFirstConsumer class binds when a pod uses it)"
        )
    return Health(HealthStatus.UNKNOWN, f"claim phase is {phase or 'not reported'}")


def crd_health(obj: KubeObject) -> Health:
    cond = condition_of(obj, "Established")
    if cond is not None and cond.get("status") == "True":
        return healthy("CRD is established")
    return progressing("Waiting for the CRD to be established")


def apiservice_health(obj: KubeObject) -> Health:
    cond = condition_of(obj, "Available")
    if cond is None:
        return progressing("Waiting to be processed")
    detail = f"{cond.get('reason', '')}: {cond.get('message', '')}".strip(": ")
    if cond.get("status") == "True":
        return healthy(detail or "APIService is available")
    return progressing(f"Waiting for the APIService: {detail or 'not available yet'}")


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
    ("apps", "ReplicaSet"): replicaset_health,
    ("batch", "Job"): job_health,
    ("batch", "CronJob"): cronjob_health,
    ("autoscaling", "HorizontalPodAutoscaler"): hpa_health,
    ("", "Pod"): pod_health,
    ("", "Service"): service_health,
    ("networking.k8s.io", "Ingress"): ingress_health,
    ("extensions", "Ingress"): ingress_health,
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
        "extensions",
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
