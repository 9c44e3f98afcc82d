"""Sync options and ignoreDifferences against a real API server (issue 21): a field
another writer owns (an HPA's replicas) keeps the app Synced and is not fought over;
Prune=false, Delete=false, Replace=true, PruneLast and FailOnSharedResource; and a
repository written for Argo CD (tests/data/argocd-sync-waves) syncs end to end."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from stacks.kube.client import KubeClient
from stacks.reconciler.api import API_VERSION, KIND
from tests.integration.reconciler.conftest import (
    GitRepo,
    Reconciler,
    condition,
    configmap,
    deployment,
    ready,
    wait_until,
)
from tests.integration.reconciler.test_hooks import (
    app,
    create_app,
    finish_job,
    job,
    one_job,
    wait_app,
)

pytestmark = pytest.mark.integration

ARGO_REPO = Path(__file__).resolve().parents[2] / "data" / "argocd-sync-waves"


def refresh(kube: KubeClient, namespace: str, name: str, token: str) -> None:
    kube.merge_patch(
        API_VERSION,
        KIND,
        name,
        {"metadata": {"annotations": {"gitops.platform.local/refresh": token}}},
        namespace,
    )


def synced_at(revision: str) -> Any:
    return lambda o: o["status"].get("lastAppliedRevision") == revision and ready(o) == "True"


def replicas(kube: KubeClient, namespace: str, name: str) -> int:
    live = kube.get("apps/v1", "Deployment", name, namespace)
    assert live is not None
    return int(live["spec"]["replicas"])


def scale(kube: KubeClient, namespace: str, name: str, count: int) -> None:
    """An HPA-like writer: the scale subresource, under another field manager."""
    kube.merge_patch(
        "apps/v1",
        "Deployment",
        name,
        {"spec": {"replicas": count}},
        namespace,
        subresource="/scale",
    )


@pytest.mark.parametrize(
    "rule",
    [
        {"group": "apps", "kind": "Deployment", "jsonPointers": ["/spec/replicas"]},
        {"group": "apps", "kind": "Deployment", "jqPathExpressions": [".spec.replicas"]},
        # The test's client writes as field manager "platform" (its User-Agent).
        {
            "group": "apps",
            "kind": "Deployment",
            "name": "web",
            "managedFieldsManagers": ["platform"],
        },
    ],
    ids=["jsonPointers", "jqPathExpressions", "managedFieldsManagers"],
)
def test_ignored_field_changed_by_another_writer_stays_synced_and_unfought(
    reconciler: Reconciler, repo: GitRepo, kube: KubeClient, namespace: str, rule: dict[str, Any]
) -> None:
    repo.write("app/web.yaml", deployment("web", replicas=1))
    first = repo.commit()
    create_app(
        kube,
        namespace,
        repo,
        "scaled",
        "app",
        ignoreDifferences=[rule],
        sync_policy={"syncOptions": ["RespectIgnoreDifferences=true"]},
    )
    wait_app(kube, namespace, "scaled", synced_at(first), "first sync")

    scale(kube, namespace, "web", 3)
    time.sleep(3)  # self-heal is on: a fight would have reset it by now
    assert replicas(kube, namespace, "web") == 3
    obj = app(kube, namespace, "scaled")
    assert obj["status"]["sync"]["status"] == "Synced", obj["status"]
    events = kube.list_objects("v1", "Event", namespace)
    assert sum(1 for e in events if e.get("reason") == "Synced") == 1  # no heal
    # Once a compare has accepted the other writer's change, later events of the object
    # (here, labels from a third writer) wake no reconcile each (Memory.accepted).
    before = reconciler.metric("platform_reconciler_syncs_total")
    for touch in range(5):
        kube.merge_patch(
            "apps/v1", "Deployment", "web", {"metadata": {"labels": {"touch": str(touch)}}},
            namespace,
        )  # fmt: skip
        time.sleep(0.3)
    time.sleep(2)  # the drift debounce and a reconcile, had any been queued
    assert reconciler.metric("platform_reconciler_syncs_total") - before <= 1

    # A sync for another change keeps the live replicas (RespectIgnoreDifferences).
    changed = deployment("web", replicas=1, annotations={"note": "v2"})
    repo.write("app/web.yaml", changed)
    second = repo.commit()
    refresh(kube, namespace, "scaled", second)
    wait_app(kube, namespace, "scaled", synced_at(second), "second sync")
    live = kube.get("apps/v1", "Deployment", "web", namespace)
    assert live is not None and live["metadata"]["annotations"]["note"] == "v2"
    assert live["spec"]["replicas"] == 3


def test_without_ignore_differences_the_change_is_drift(
    reconciler: Reconciler, repo: GitRepo, kube: KubeClient, namespace: str
) -> None:
    """The control for the test above: the same writer is drift without a rule."""
    repo.write("app/web.yaml", deployment("web", replicas=1))
    first = repo.commit()
    create_app(kube, namespace, repo, "plain", "app")
    wait_app(kube, namespace, "plain", synced_at(first), "first sync")
    scale(kube, namespace, "web", 3)
    wait_until(lambda: replicas(kube, namespace, "web") == 1, "self-heal resets replicas")


def test_prune_false_delete_false_and_replace(
    reconciler: Reconciler, repo: GitRepo, kube: KubeClient, namespace: str
) -> None:
    keep = configmap("keep", annotations={"argocd.argoproj.io/sync-options": "Prune=false"})
    data = configmap("data", annotations={"argocd.argoproj.io/sync-options": "Delete=false"})
    whole = configmap("whole", {"a": "1"}, {"argocd.argoproj.io/sync-options": "Replace=true"})
    applied = configmap("applied", {"a": "1"})
    repo.write("app/objects.yaml", [keep, data, whole, applied, configmap("other")])
    first = repo.commit()
    kube.create(
        {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {
                "name": "opts",
                "namespace": namespace,
                "finalizers": ["resources-finalizer.gitops.platform.local"],
            },
            "spec": {
                "source": {"repoURL": repo.url, "path": "app", "targetRevision": "main"},
                "destination": {"namespace": namespace},
                "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
            },
        }
    )
    wait_app(kube, namespace, "opts", synced_at(first), "first sync")
    # Someone adds a key to both; Replace=true resets it on the next sync, apply keeps it.
    for name in ("whole", "applied"):
        kube.merge_patch("v1", "ConfigMap", name, {"data": {"extra": "x"}}, namespace)

    whole["data"] = {"a": "2"}
    applied["data"] = {"a": "2"}
    repo.write("app/objects.yaml", [data, whole, applied, configmap("other")])  # keep leaves
    second = repo.commit()
    refresh(kube, namespace, "opts", second)
    obj = wait_app(kube, namespace, "opts", synced_at(second), "second sync")
    assert kube.get("v1", "ConfigMap", "keep", namespace) is not None  # Prune=false
    assert f"{namespace}_keep__ConfigMap" not in {e["id"] for e in obj["status"]["inventory"]}
    whole_live = kube.get("v1", "ConfigMap", "whole", namespace)
    applied_live = kube.get("v1", "ConfigMap", "applied", namespace)
    assert whole_live is not None and whole_live["data"] == {"a": "2"}
    assert applied_live is not None and applied_live["data"] == {"a": "2", "extra": "x"}
    time.sleep(2)  # a replaced object is not taken for drift and replaced again
    again = kube.get("v1", "ConfigMap", "whole", namespace)
    assert again is not None
    assert again["metadata"]["resourceVersion"] == whole_live["metadata"]["resourceVersion"]

    kube.delete(API_VERSION, KIND, "opts", namespace)
    wait_until(lambda: kube.get(API_VERSION, KIND, "opts", namespace) is None, "deleted")
    assert kube.get("v1", "ConfigMap", "other", namespace) is None  # cascade
    assert kube.get("v1", "ConfigMap", "data", namespace) is not None  # Delete=false


def test_prune_last_waits_for_everything_healthy(
    reconciler: Reconciler, repo: GitRepo, kube: KubeClient, namespace: str
) -> None:
    repo.write("app/objects.yaml", [configmap("old"), configmap("stays")])
    first = repo.commit()
    create_app(
        kube, namespace, repo, "last", "app", sync_policy={"syncOptions": ["PruneLast=true"]}
    )
    wait_app(kube, namespace, "last", synced_at(first), "first sync")
    # An ordinary Job (not a hook) whose health the test decides: Progressing until done.
    repo.write("app/objects.yaml", [configmap("stays"), job(name="gate")])
    second = repo.commit()
    refresh(kube, namespace, "last", second)
    wait_until(lambda: kube.get("batch/v1", "Job", "gate", namespace) is not None, "applied")
    time.sleep(2)
    assert kube.get("v1", "ConfigMap", "old", namespace) is not None  # not pruned yet
    finish_job(kube, namespace, "gate", succeeded=True)
    wait_until(lambda: kube.get("v1", "ConfigMap", "old", namespace) is None, "pruned last")
    wait_app(kube, namespace, "last", synced_at(second), "second sync")


def test_fail_on_shared_resource(
    reconciler: Reconciler, repo: GitRepo, kube: KubeClient, namespace: str
) -> None:
    repo.write("one/cm.yaml", configmap("shared"))
    repo.write("two/cm.yaml", [configmap("shared"), configmap("mine")])
    rev = repo.commit()
    create_app(kube, namespace, repo, "one", "one")
    wait_app(kube, namespace, "one", synced_at(rev), "one synced")
    create_app(
        kube,
        namespace,
        repo,
        "two",
        "two",
        sync_policy={"syncOptions": ["FailOnSharedResource=true"]},
    )
    obj = wait_app(
        kube,
        namespace,
        "two",
        lambda o: condition(o, "Ready").get("reason") == "SharedResource",
        "refused",
    )
    assert f"already managed by Application '{namespace}/one'" in condition(obj, "Ready")["message"]
    assert kube.get("v1", "ConfigMap", "mine", namespace) is None  # nothing was applied


def test_a_repository_written_for_argo_cd_syncs(
    reconciler: Reconciler, repo: GitRepo, kube: KubeClient, namespace: str
) -> None:
    """tests/data/argocd-sync-waves: Argo CD's annotations as written for Argo CD (a
    PreSync Job with generateName, waves, a PostSync Job, sync options); only the
    Application's apiVersion group differs. Its Jobs are ordinary ones: the cluster's
    Job controller and kwok (whose stages complete a Job's pods) finish them."""
    shutil.copytree(ARGO_REPO / "app", repo.work / "app")
    application = (ARGO_REPO / "application.yaml").read_text()
    rev = repo.commit("an Argo CD repository")
    import yaml

    obj = yaml.safe_load(application.replace("REPO_URL", repo.url))
    obj["metadata"]["namespace"] = namespace
    obj["spec"]["destination"]["namespace"] = namespace
    kube.create(obj)

    one_job(kube, namespace, "upgrade-sql-schema")
    assert kube.get("apps/v1", "Deployment", "backend", namespace) is None
    done = wait_app(kube, namespace, "guestbook-waves", synced_at(rev), "synced", timeout=60)
    phases = {(i["phase"], i["name"][:10], i["state"]) for i in done["status"]["hooks"]["items"]}
    assert phases == {
        ("PreSync", "upgrade-sq", "Succeeded"),
        ("PostSync", "smoke-test", "Succeeded"),
        ("Skip", "manual-onl", "Skipped"),
    }
    assert kube.get("v1", "ConfigMap", "manual-only", namespace) is None
    assert done["status"]["sync"]["status"] == "Synced"
    waves = {r["name"]: r["syncWave"] for r in done["status"]["resources"]}
    assert waves["backend"] < waves["frontend"]
