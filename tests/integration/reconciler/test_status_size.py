"""A large Application's status stays bounded (issue 14: ~237 bytes per managed object,
past etcd's limit at ~6,000): counts for everything, a list only of what needs attention,
and the inventory compressed, never read as empty when it does not decode."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stacks.kube.client import KubeClient
from stacks.reconciler.api import API_VERSION, KIND
from stacks.reconciler.status import FULL_RESOURCES, INLINE_INVENTORY, read_inventory
from tests.integration.reconciler.conftest import (
    Apps,
    GitRepo,
    Reconciler,
    condition,
    configmap,
    start_reconciler,
)
from tests.support import processes
from tests.support.kwok import KwokCluster

pytestmark = pytest.mark.integration


def test_a_large_app_lists_only_what_needs_attention(
    reconciler: Reconciler, repo: GitRepo, apps: Apps, kube: KubeClient, namespace: str
) -> None:
    count = FULL_RESOURCES + 30
    repo.write("big/cm.yaml", [configmap(f"cm{i:04d}") for i in range(count)])
    rev = repo.commit()
    apps.create("big", "big", self_heal=False)
    obj = apps.wait_synced("big", rev, timeout=120)
    status = obj["status"]
    assert status["resourceCounts"]["total"] == count
    assert status["resourceCounts"]["synced"] == count
    assert status["resources"] == [] and status["resourcesOmitted"] == count
    # Pruning still knows every object, from the compressed inventory.
    assert "inventory" not in status and status["inventoryCompressed"]["count"] == count
    assert len(read_inventory(status)) == count
    listed = len(json.dumps(status["resources"])) + len(json.dumps(status["resourceCounts"]))
    assert listed < 500, listed

    # An object edited by hand (selfHeal off) is listed, by name, as OutOfSync.
    kube.merge_patch("v1", "ConfigMap", "cm0007", {"data": {"k": "by hand"}}, namespace)
    obj = apps.wait(
        "big",
        lambda o: o["status"]["resourceCounts"].get("outOfSync") == 1,
        "the drift to be counted",
    )
    assert [(e["name"], e["status"]) for e in obj["status"]["resources"]] == [
        ("cm0007", "OutOfSync")
    ]
    assert obj["status"]["sync"]["status"] == "OutOfSync"


def test_an_unreadable_inventory_stops_the_app_and_prunes_nothing(
    cluster: KwokCluster,
    crd: None,
    kube: KubeClient,
    namespace: str,
    repo: GitRepo,
    apps: Apps,
    tmp_path: Path,
) -> None:
    """A compressed inventory that does not decode (edited by hand) is never read as an
    empty one, which would silently stop pruning: the app stalls and says how to go on."""
    count = INLINE_INVENTORY + 10
    repo.write("big/cm.yaml", [configmap(f"cm{i:04d}") for i in range(count)])
    revision = repo.commit()
    args = [
        f"--kubeconfig={cluster.kubeconfig}",
        f"--watch-namespace={namespace}",
        "--no-leader-elect",
    ]
    running = start_reconciler(tmp_path, args)
    try:
        apps.create("big", "big", interval="1h")
        apps.wait_synced("big", revision, timeout=120)
    finally:
        processes.stop(running.process)
    # While the reconciler is down the inventory is broken, and 5 objects leave git.
    broken = {"count": count, "encoding": "gzip+base64", "data": "bm90IGd6aXA="}
    kube.merge_patch(
        API_VERSION,
        KIND,
        "big",
        {"status": {"inventoryCompressed": broken}},
        namespace,
        subresource="/status",
    )
    repo.write("big/cm.yaml", [configmap(f"cm{i:04d}") for i in range(count - 5)])
    repo.commit()
    running = start_reconciler(tmp_path, args, name="restarted")
    try:
        obj = apps.wait(
            "big",
            lambda o: condition(o, "Ready").get("reason") == "InventoryUnreadable",
            "the app to stop on its unreadable inventory",
            timeout=60,
        )
        assert "inventoryCompressed cannot be read" in condition(obj, "Ready")["message"]
        assert "kubectl patch application" in condition(obj, "Ready")["message"]
        assert condition(obj, "Stalled")["status"] == "True"
        assert obj["status"]["inventoryCompressed"] == broken  # kept for a person to look at
        names = [
            o["metadata"]["name"]
            for o in kube.list_objects("v1", "ConfigMap", namespace)
            if o["metadata"]["name"].startswith("cm")
        ]
        assert len(names) == count  # nothing pruned
    finally:
        processes.stop(running.process)
