"""What the real-node e2e tests read off the cluster and the node: every object (to prove
`platform down` leaves the cluster as it found it), pods as the kubelet runs them, a
command in a throwaway pod, and the memory the platform's pods use.

Called by tests/e2e/test_real_node.py; reads through kubectl, the way a person would look.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support import processes

Kubectl = Callable[..., str]

# Kinds whose objects come and go on their own (not the platform's doing).
VOLATILE = frozenset(
    {
        "events",
        "events.events.k8s.io",
        "leases.coordination.k8s.io",
        "endpoints",
        "endpointslices.discovery.k8s.io",
        "pods",
        "replicasets.apps",
        "controllerrevisions.apps",
    }
)


def all_objects(kubectl: Kubectl) -> set[str]:
    """`kind namespace/name` of every listable object in the cluster, volatile kinds aside
    (their owners are compared instead: Deployments, StatefulSets, ...). Objects already
    being deleted, and everything in a namespace being deleted, count as gone."""
    kinds = kubectl("api-resources", "--verbs=list", "-o", "name").split()
    listings: dict[str, list[dict[str, Any]]] = {}
    for kind in kinds:
        if kind in VOLATILE:
            continue
        listing = kubectl("get", kind, "--all-namespaces", "-o", "json", check=False)
        listings[kind] = json.loads(listing).get("items", []) if listing.strip() else []
    leaving = {
        item["metadata"]["name"]
        for item in listings.get("namespaces", [])
        if item["metadata"].get("deletionTimestamp")
    }
    found: set[str] = set()
    for kind, items in listings.items():
        for item in items:
            meta = item["metadata"]
            if meta.get("deletionTimestamp") or meta.get("namespace") in leaving:
                continue
            found.add(f"{kind} {meta.get('namespace', '')}/{meta['name']}")
    return found


def wait_for_objects(kubectl: Kubectl, expected: set[str], timeout: float) -> None:
    """Wait until the cluster holds exactly `expected`; fail naming what differs."""
    deadline = time.monotonic() + timeout
    while True:
        now = all_objects(kubectl)
        if now == expected:
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"after {timeout:.0f}s the cluster still differs from before: "
                f"left behind {sorted(now - expected)}, gone {sorted(expected - now)}"
            )
        time.sleep(2)


def pods(kubectl: Kubectl, namespace: str, selector: str = "") -> list[dict[str, Any]]:
    args = ["get", "pods", "-n", namespace, "-o", "json"]
    if selector:
        args += ["-l", selector]
    items: list[dict[str, Any]] = json.loads(kubectl(*args))["items"]
    return items


def running_and_ready(pod: dict[str, Any]) -> bool:
    """Every container started by the kubelet and Ready (a real container, not kwok's)."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return bool(statuses) and all(
        s.get("ready") and "running" in (s.get("state") or {}) and s.get("containerID")
        for s in statuses
    )


def run_in_pod(
    kubectl: Kubectl, namespace: str, image: str, command: list[str], timeout: float = 90
) -> str:
    """Run `command` in a throwaway pod of a locally made image; its output."""
    name = f"probe-{uuid.uuid4().hex[:8]}"
    kubectl(
        "run", name, "-n", namespace, "--restart=Never", f"--image={image}",
        "--image-pull-policy=Never", "--command", "--", *command,
    )  # fmt: skip

    def finished() -> bool:
        phase = kubectl("get", "pod", name, "-n", namespace, "-o", "jsonpath={.status.phase}")
        return phase in ("Succeeded", "Failed")

    try:
        processes.wait_for(finished, timeout=timeout, what=f"pod {name} to finish", interval=0.5)
        return kubectl("logs", name, "-n", namespace)
    finally:
        kubectl("delete", "pod", name, "-n", namespace, "--wait=false", check=False)


def pod_rss_bytes(pod: dict[str, Any]) -> int:
    """The resident memory of a pod's processes, read from its cgroup on this node."""
    uid = pod["metadata"]["uid"]
    pids: set[int] = set()
    for procs in Path("/sys/fs/cgroup/memory/kubepods").glob(f"**/pod{uid}/**/cgroup.procs"):
        pids.update(int(p) for p in procs.read_text().split())
    total = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


def wait_ready(
    kubectl: Kubectl, namespace: str, selector: str, count: int, timeout: float
) -> float:
    """Wait until `count` pods matching `selector` run and are Ready; the seconds it took."""
    started = time.monotonic()

    def ready() -> bool:
        found = pods(kubectl, namespace, selector)  # one listing per look
        return len(found) == count and all(running_and_ready(p) for p in found)

    processes.wait_for(
        ready,
        timeout=timeout,
        what=f"{count} ready pod(s) {selector} in {namespace}",
        interval=0.5,
    )
    return time.monotonic() - started
