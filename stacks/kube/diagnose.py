"""Why a workload is not ready: the cause a person needs instead of "0/1 ready".

A wait that only says "0/1 ready" until it times out is the most common complaint about
bootstrap tools (../shared/reference/anchors.md). When a Deployment or StatefulSet the
bootstrap deployed is not ready, `why_not_ready` looks one level down, the way a person
would with `kubectl describe`, and returns the first cause it finds, most fundamental
first:

1. a PersistentVolumeClaim of its pods is Pending (no volume, no default StorageClass):
   the PV controller's own event says why;
2. a pod cannot be scheduled: the scheduler's message;
3. a container is waiting for a reason other than starting (image pull, crash loop,
   bad config) or keeps restarting;
4. a pod runs but is not ready: the latest warning about it (a failing probe);
5. no pod at all: the latest warning about the workload or its ReplicaSets (a pod the
   API refused: quota, admission).

Reads only (pods, claims, StorageClasses, events); "" when nothing explains it. Called by
the bootstrap stages that wait for what they deployed (git server, Vault, reconciler).
"""

from __future__ import annotations

from stacks.errors import PlatformError, trim
from stacks.kube.objects import KubeObject, ObjectReader, condition_of

# Container states that are a normal part of starting, not a cause.
STARTING_REASONS = frozenset({"ContainerCreating", "PodInitializing"})
DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"
MESSAGE_LIMIT = 240


def why_not_ready(client: ObjectReader, workload: KubeObject) -> str:
    """The first cause found for `workload` (a Deployment or StatefulSet) not being ready,
    as one sentence, or "" if nothing explains it (or the cluster cannot be read)."""
    try:
        return _diagnose(client, workload)
    except PlatformError:
        return ""  # a diagnosis is a bonus: never turn a wait into a failure


def _diagnose(client: ObjectReader, workload: KubeObject) -> str:
    namespace = str((workload.get("metadata") or {}).get("namespace") or "")
    labels = ((workload.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    if not labels:
        return ""
    selector = ",".join(f"{key}={value}" for key, value in sorted(labels.items()))
    pods = client.list_objects("v1", "Pod", namespace, selector)
    events = _Events(client, namespace)
    if not pods:
        return _no_pods(workload, events)
    for cause in (_pending_claim, _unschedulable, _container_problem, _not_ready):
        for pod in pods:
            found = cause(client, pod, events)
            if found:
                return trim(found, MESSAGE_LIMIT)
    return ""


class _Events:
    """The namespace's events, newest first, listed on first use: the scheduler's and the
    kubelet's causes are read from the pod itself and need none."""

    def __init__(self, client: ObjectReader, namespace: str) -> None:
        self._client = client
        self._namespace = namespace
        self._items: list[KubeObject] | None = None

    def latest_about(
        self, kind: str, name: str, prefix: bool = False, warning: bool = True
    ) -> KubeObject | None:
        """The newest event (a Warning, unless `warning` is False) about the object
        `kind`/`name` (or any whose name starts so)."""
        if self._items is None:
            listed = self._client.list_objects("v1", "Event", self._namespace)
            self._items = sorted(listed, key=_event_time, reverse=True)
        for event in self._items:
            if warning and event.get("type") != "Warning":
                continue
            involved = event.get("involvedObject") or {}
            involved_name = str(involved.get("name", ""))
            named = involved_name.startswith(name) if prefix else involved_name == name
            if involved.get("kind") == kind and named:
                return event
        return None


def _event_time(event: KubeObject) -> str:
    series = event.get("series") or {}
    return str(
        series.get("lastObservedTime")
        or event.get("lastTimestamp")
        or event.get("eventTime")
        or (event.get("metadata") or {}).get("creationTimestamp")
        or ""
    )


def _no_pods(workload: KubeObject, events: _Events) -> str:
    kind = str(workload.get("kind") or "")
    name = str((workload.get("metadata") or {}).get("name") or "")
    # A Deployment's pods are created by its ReplicaSets, named "<deployment>-<hash>".
    event = (
        events.latest_about("ReplicaSet", f"{name}-", prefix=True) if kind == "Deployment" else None
    ) or events.latest_about(kind, name)
    if event is None:
        return ""
    return trim(f"no pod was created: {event.get('message', '')}", MESSAGE_LIMIT)


def _claims(pod: KubeObject) -> list[str]:
    volumes = (pod.get("spec") or {}).get("volumes") or []
    return [
        str(v["persistentVolumeClaim"]["claimName"])
        for v in volumes
        if (v.get("persistentVolumeClaim") or {}).get("claimName")
    ]


def _pending_claim(client: ObjectReader, pod: KubeObject, events: _Events) -> str:
    namespace = str((pod.get("metadata") or {}).get("namespace") or "")
    for claim_name in _claims(pod):
        claim = client.get("v1", "PersistentVolumeClaim", claim_name, namespace)
        if claim is None:
            return f"PersistentVolumeClaim '{claim_name}' does not exist"
        if (claim.get("status") or {}).get("phase") == "Bound":
            continue
        cause = f"PersistentVolumeClaim '{claim_name}' is Pending"
        # The PV controller reports a claim it cannot bind as a Normal event (FailedBinding).
        event = events.latest_about("PersistentVolumeClaim", claim_name, warning=False)
        if event is not None:
            cause += f": {event.get('message', '')}"
        if not (claim.get("spec") or {}).get("storageClassName") and not has_default_storage_class(
            client
        ):
            cause += " (the cluster has no default StorageClass: install a volume provisioner or create a PersistentVolume for it)"
        return cause
    return ""


def has_default_storage_class(client: ObjectReader) -> bool:
    """Does a StorageClass carry the default annotation? (Without one, a claim that names
    no class waits for a PersistentVolume made by hand.) Also used by `platform doctor`."""
    classes = client.list_objects("storage.k8s.io/v1", "StorageClass")
    return any(
        ((c.get("metadata") or {}).get("annotations") or {}).get(DEFAULT_CLASS_ANNOTATION) == "true"
        for c in classes
    )


def _pod_name(pod: KubeObject) -> str:
    return str((pod.get("metadata") or {}).get("name") or "")


def _unschedulable(client: ObjectReader, pod: KubeObject, events: _Events) -> str:
    scheduled = condition_of(pod, "PodScheduled")
    if scheduled is None or scheduled.get("status") != "False":
        return ""
    return f"pod '{_pod_name(pod)}' cannot be scheduled: {scheduled.get('message') or scheduled.get('reason', '')}"


def _container_problem(client: ObjectReader, pod: KubeObject, events: _Events) -> str:
    status = pod.get("status") or {}
    statuses = [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
    ]
    for container in statuses:
        waiting = (container.get("state") or {}).get("waiting") or {}
        reason = str(waiting.get("reason") or "")
        if reason and reason not in STARTING_REASONS:
            detail = waiting.get("message") or _last_exit(container)
            return f"pod '{_pod_name(pod)}' container '{container.get('name')}' is {reason}" + (
                f": {detail}" if detail else ""
            )
    if status.get("phase") == "Failed":
        return f"pod '{_pod_name(pod)}' failed: {status.get('message') or status.get('reason', '')}"
    return ""


def _last_exit(container: KubeObject) -> str:
    terminated = (container.get("lastState") or {}).get("terminated") or {}
    if not terminated:
        return ""
    return f"last exit code {terminated.get('exitCode')}" + (
        f" ({terminated['reason']})" if terminated.get("reason") else ""
    )


def _not_ready(client: ObjectReader, pod: KubeObject, events: _Events) -> str:
    ready = condition_of(pod, "Ready")
    if (pod.get("status") or {}).get("phase") != "Running" or (
        ready is not None and ready.get("status") == "True"
    ):
        return ""
    event = events.latest_about("Pod", _pod_name(pod))
    detail = f": {event.get('reason')}: {event.get('message', '')}" if event is not None else ""
    return f"pod '{_pod_name(pod)}' runs but is not ready{detail}"


def with_cause(message: str, client: ObjectReader, workload: KubeObject | None) -> str:
    """`message` ("waiting for ...: 0/1 ready") followed by the cause, when one is found."""
    cause = why_not_ready(client, workload) if workload else ""
    return f"{message}; {cause}" if cause else message
