"""A large Application's status stays bounded (issue 14: ~237 bytes per managed object,
past etcd's limit at ~6,000): counts for everything, a list only of what needs attention."""

from __future__ import annotations

import json

import pytest

from stacks.kube.client import KubeClient
from stacks.reconciler.status import FULL_RESOURCES, read_inventory
from tests.integration.reconciler.conftest import Apps, GitRepo, Reconciler, configmap

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
