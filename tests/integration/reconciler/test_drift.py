"""Drift: a managed object deleted or edited by hand comes back (selfHeal) or is reported
OutOfSync (no selfHeal) within seconds, through the watches on managed kinds."""

from __future__ import annotations

import pytest

from stacks.kube.client import KubeClient
from tests.integration.reconciler.conftest import (
    Apps,
    GitRepo,
    Reconciler,
    condition,
    configmap,
    deployment,
    wait_until,
)

pytestmark = pytest.mark.integration


def test_deleted_deployment_comes_back(
    reconciler: Reconciler, repo: GitRepo, apps: Apps, kube: KubeClient, namespace: str
) -> None:
    repo.write("app/web.yaml", deployment("web", 2))
    rev = repo.commit()
    apps.create("heal", "app")
    apps.wait_synced("heal", rev)
    before = kube.get("apps/v1", "Deployment", "web", namespace)
    assert before is not None
    kube.delete("apps/v1", "Deployment", "web", namespace)

    def recreated() -> bool:
        live = kube.get("apps/v1", "Deployment", "web", namespace)
        return live is not None and live["metadata"]["uid"] != before["metadata"]["uid"]

    took = wait_until(recreated, "the Deployment to be re-created", timeout=10)
    assert took < 5, f"restored after {took:.1f}s"


def test_hand_edit_is_reverted_with_self_heal(
    reconciler: Reconciler, repo: GitRepo, apps: Apps, kube: KubeClient, namespace: str
) -> None:
    repo.write("app/web.yaml", deployment("web", 2))
    repo.write("app/cm.yaml", configmap("settings", {"mode": "git"}))
    rev = repo.commit()
    apps.create("heal", "app")
    apps.wait_synced("heal", rev)
    kube.merge_patch("apps/v1", "Deployment", "web", {"spec": {"replicas": 5}}, namespace)
    kube.merge_patch("v1", "ConfigMap", "settings", {"data": {"mode": "by hand"}}, namespace)

    def reverted() -> bool:
        web = kube.get("apps/v1", "Deployment", "web", namespace) or {}
        cm = kube.get("v1", "ConfigMap", "settings", namespace) or {}
        return bool(web["spec"]["replicas"] == 2 and cm["data"]["mode"] == "git")

    took = wait_until(reverted, "the hand edits to be reverted", timeout=10)
    assert took < 5


def test_hand_edit_without_self_heal_is_reported_out_of_sync(
    reconciler: Reconciler, repo: GitRepo, apps: Apps, kube: KubeClient, namespace: str
) -> None:
    repo.write("app/cm.yaml", configmap("settings", {"mode": "git"}))
    rev = repo.commit()
    apps.create("watch-only", "app", self_heal=False)
    apps.wait_synced("watch-only", rev)
    kube.merge_patch("v1", "ConfigMap", "settings", {"data": {"mode": "by hand"}}, namespace)
    obj = apps.wait(
        "watch-only",
        lambda o: o["status"]["sync"]["status"] == "OutOfSync",
        "OutOfSync after a hand edit",
        timeout=10,
    )
    assert "ConfigMap" in condition(obj, "Ready")["message"]
    resources = {r["name"]: r["status"] for r in obj["status"]["resources"]}
    assert resources == {"settings": "OutOfSync"}
    live = kube.get("v1", "ConfigMap", "settings", namespace)
    assert live is not None and live["data"]["mode"] == "by hand"  # not reverted

    # `platform sync` (the refresh annotation) applies git's version once
    apps.annotate("watch-only", **{"gitops.platform.local/refresh": "now"})
    apps.wait(
        "watch-only",
        lambda o: (
            o["status"]["sync"]["status"] == "Synced"
            and o["status"].get("lastHandledRefresh") == "now"
        ),
        "Synced after a manual sync",
    )
    live = kube.get("v1", "ConfigMap", "settings", namespace)
    assert live is not None and live["data"]["mode"] == "git"
