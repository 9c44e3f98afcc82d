"""The controller runtime against the real API server: events reach reconcile, requeues work."""

from __future__ import annotations

import threading
from collections.abc import Hashable

import pytest

from stacks.kube.client import KubeClient
from stacks.kube.controller import Controller, Watch, object_key
from tests.support.kwok import KwokCluster
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

    controller = Controller(
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
