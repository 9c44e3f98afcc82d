"""The controller runtime against the real API server: events reach reconcile, requeues work."""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable

import pytest

from stacks.kube.client import KubeClient
from stacks.kube.controller import Runtime, Watch, object_key
from stacks.kube.leader import LeaderElector
from tests.support.kwok import KwokCluster
from tests.support.manifests import schemaless_crd
from tests.support.processes import wait_for

pytestmark = pytest.mark.integration


def test_configmap_events_are_reconciled_and_requeued(cluster: KwokCluster, namespace: str) -> None:
    client = KubeClient.from_kubeconfig(str(cluster.kubeconfig))
    seen: list[Hashable] = []
    calls: dict[Hashable, int] = {}

    def reconcile(key: Hashable) -> float | None:
        seen.append(key)
        calls[key] = calls.get(key, 0) + 1
        # Ask to come back once, shortly: the requeue path.
        return 0.2 if calls[key] == 1 and key == (namespace, "requeue-me") else None

    controller = Runtime(
        name="test",
        client=client,
        reconcile=reconcile,
        watches=[Watch("v1", "ConfigMap", object_key, namespace=namespace)],
    )
    stop = threading.Event()
    thread = threading.Thread(target=controller.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert controller.wait_synced(30)
        client.create(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "one", "namespace": namespace},
            }
        )
        client.create(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "requeue-me", "namespace": namespace},
            }
        )
        wait_for(lambda: (namespace, "one") in seen, timeout=10, what="reconcile of ConfigMap one")
        wait_for(
            lambda: calls.get((namespace, "requeue-me"), 0) >= 2, timeout=10, what="the requeue"
        )
        assert controller.informer("ConfigMap").get_named(namespace, "one") is not None
        before = calls[(namespace, "one")]
        client.delete("v1", "ConfigMap", "one", namespace)
        wait_for(
            lambda: calls[(namespace, "one")] > before, timeout=10, what="reconcile after delete"
        )
        wait_for(
            lambda: controller.informer("ConfigMap").get_named(namespace, "one") is None,
            timeout=5,
            what="cache eviction",
        )
    finally:
        stop.set()
        thread.join(timeout=10)


def test_a_kind_whose_crd_arrives_later_is_reconciled_as_soon_as_it_is_established(
    cluster: KwokCluster, namespace: str
) -> None:
    """A controller started before its CRD (the platform's CRDs come from git after the
    controllers) lists its kind when the CRD is Established, not after its backoff, which
    has grown to 8 s by the time the CRD is created here."""
    client = KubeClient.from_kubeconfig(str(cluster.kubeconfig))
    group = f"t{namespace.replace('-', '')[-12:]}.example.com"
    seen: list[Hashable] = []

    def reconcile(key: Hashable) -> None:
        seen.append(key)

    controller = Runtime(
        name="late-crd",
        client=client,
        reconcile=reconcile,
        watches=[Watch(f"{group}/v1", "LateWidget", object_key, namespace=namespace)],
    )
    stop = threading.Event()
    thread = threading.Thread(target=controller.run, args=(stop,), daemon=True)
    thread.start()
    try:
        # Not served: the cache retries (2 s, then 4 s, then 8 s between list attempts).
        assert not controller.wait_synced(6.5)
        client.create(schemaless_crd(group, "LateWidget", "latewidgets"))
        cluster.wait_established(f"latewidgets.{group}")
        established = time.monotonic()
        client.create(
            {
                "apiVersion": f"{group}/v1",
                "kind": "LateWidget",
                "metadata": {"name": "first", "namespace": namespace},
            }
        )
        wait_for(
            lambda: (namespace, "first") in seen,
            timeout=30,
            what="reconcile of the first LateWidget",
        )
        # Well inside the 8 s the backoff alone would have waited.
        assert time.monotonic() - established < 5.0
    finally:
        stop.set()
        thread.join(timeout=10)
        client.delete("apiextensions.k8s.io/v1", "CustomResourceDefinition", f"latewidgets.{group}")


def test_with_leader_election_only_the_lease_holder_reconciles(
    cluster: KwokCluster, namespace: str
) -> None:
    """Two replicas of one controller: the second waits for the Lease and takes over
    when the first stops (its graceful stop releases the Lease)."""
    client = KubeClient.from_kubeconfig(str(cluster.kubeconfig))
    seen: dict[str, list[Hashable]] = {"a": [], "b": []}
    stops = {"a": threading.Event(), "b": threading.Event()}
    threads = []
    for name in ("a", "b"):
        runtime = Runtime(
            name=f"replica-{name}",
            client=client,
            reconcile=lambda key, name=name: seen[name].append(key),  # type: ignore[misc]
            watches=[Watch("v1", "ConfigMap", object_key, namespace=namespace)],
        )
        leader = LeaderElector(client, namespace, "replicas", name, lease_seconds=5)
        thread = threading.Thread(target=runtime.run, args=(stops[name], leader), daemon=True)
        thread.start()
        threads.append(thread)
        if name == "a":
            wait_for(leader.leading.is_set, timeout=10, what="a to lead")
    try:
        client.create(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "one", "namespace": namespace},
            }
        )
        wait_for(lambda: (namespace, "one") in seen["a"], timeout=10, what="a's reconcile")
        assert seen["b"] == []  # b waits for the Lease
        stops["a"].set()
        threads[0].join(timeout=10)
        wait_for(lambda: (namespace, "one") in seen["b"], timeout=20, what="b to take over")
    finally:
        for stop in stops.values():
            stop.set()
        for thread in threads:
            thread.join(timeout=10)
        client.close()
