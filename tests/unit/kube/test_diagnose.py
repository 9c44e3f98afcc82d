"""The pod-level causes kwok cannot produce (a kubelet's container states), on objects
shaped as the API returns them; the scheduler, PV controller and quota causes are
tested against the real control plane in tests/integration/kube/test_diagnose.py."""

from __future__ import annotations

from typing import Any

from stacks.errors import TransientError
from stacks.kube.diagnose import why_not_ready
from stacks.kube.objects import KubeObject

DEPLOYMENT: KubeObject = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "ns"},
    "spec": {"selector": {"matchLabels": {"app": "web"}}},
}


class Reads:
    """Objects held in memory, answering the two reads the diagnosis makes."""

    def __init__(self, *objects: KubeObject) -> None:
        self.objects = list(objects)

    def list_objects(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> list[KubeObject]:
        return [o for o in self.objects if o["kind"] == kind]

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> KubeObject | None:
        found = [o for o in self.list_objects(api_version, kind) if o["metadata"]["name"] == name]
        return found[0] if found else None


class Unreachable(Reads):
    def list_objects(self, *args: Any, **kwargs: Any) -> list[KubeObject]:
        raise TransientError("the API server does not answer")


def pod(status: dict[str, Any], name: str = "web-abc") -> KubeObject:
    return {
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "ns", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "main"}]},
        "status": status,
    }


def event(kind: str, name: str, reason: str, message: str, when: str) -> KubeObject:
    return {
        "kind": "Event",
        "type": "Warning",
        "metadata": {"name": f"{name}.{when}"},
        "involvedObject": {"kind": kind, "name": name},
        "reason": reason,
        "message": message,
        "lastTimestamp": when,
    }


def test_an_image_that_cannot_be_pulled() -> None:
    waiting = {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "app:1"'}
    status = {
        "phase": "Pending",
        "containerStatuses": [{"name": "main", "state": {"waiting": waiting}}],
    }
    assert why_not_ready(Reads(pod(status)), DEPLOYMENT) == (
        "pod 'web-abc' container 'main' is ImagePullBackOff: Back-off pulling image \"app:1\""
    )


def test_a_crash_loop_gives_the_last_exit() -> None:
    container = {
        "name": "main",
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": 3, "reason": "Error"}},
    }
    status = {"phase": "Running", "containerStatuses": [container]}
    assert why_not_ready(Reads(pod(status)), DEPLOYMENT) == (
        "pod 'web-abc' container 'main' is CrashLoopBackOff: last exit code 3 (Error)"
    )


def test_starting_is_not_a_cause() -> None:
    waiting = {"reason": "ContainerCreating"}
    status = {
        "phase": "Pending",
        "containerStatuses": [{"name": "main", "state": {"waiting": waiting}}],
    }
    assert why_not_ready(Reads(pod(status)), DEPLOYMENT) == ""


def test_a_running_pod_that_is_not_ready_gets_its_newest_warning() -> None:
    status = {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]}
    objects = (
        pod(status),
        event(
            "Pod",
            "web-abc",
            "Unhealthy",
            "Readiness probe failed: HTTP 503",
            "2026-11-30T10:00:05Z",
        ),
        event("Pod", "web-abc", "Unhealthy", "Readiness probe failed: old", "2026-11-30T10:00:01Z"),
        event("Pod", "web-abcd", "Unhealthy", "another pod", "2026-11-30T10:00:09Z"),
    )
    assert why_not_ready(Reads(*objects), DEPLOYMENT) == (
        "pod 'web-abc' runs but is not ready: Unhealthy: Readiness probe failed: HTTP 503"
    )


def test_a_long_cause_is_trimmed() -> None:
    waiting = {"reason": "CreateContainerConfigError", "message": "x" * 1000}
    status = {
        "phase": "Pending",
        "containerStatuses": [{"name": "main", "state": {"waiting": waiting}}],
    }
    text = why_not_ready(Reads(pod(status)), DEPLOYMENT)
    assert len(text) <= 240 and text.endswith("...")


def test_an_unreadable_cluster_gives_no_cause_instead_of_an_error() -> None:
    assert why_not_ready(Unreachable(), DEPLOYMENT) == ""


def test_a_workload_without_a_selector_gives_no_cause() -> None:
    assert why_not_ready(Reads(), {"kind": "Deployment", "metadata": {"name": "x"}}) == ""
