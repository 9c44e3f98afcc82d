"""Failures never prune: bad YAML, a missing or empty path, an object the API server
rejects, an unreachable git source; the prune breaker; other apps keep syncing."""

from __future__ import annotations

import json
import re
import shutil
import time

import pytest

from stacks.kube.client import KubeClient
from tests.integration.reconciler.conftest import (
    Apps,
    GitRepo,
    Reconciler,
    condition,
    configmap,
    ready,
    wait_until,
)
from tests.support.kwok import KwokCluster

pytestmark = pytest.mark.integration

REFRESH = "gitops.platform.local/refresh"


def _two_apps(repo: GitRepo, apps: Apps) -> str:
    repo.write("broken/cm.yaml", [configmap("one"), configmap("two")])
    repo.write("healthy/cm.yaml", configmap("fine"))
    rev = repo.commit()
    apps.create("broken", "broken")
    apps.create("healthy", "healthy")
    apps.wait_synced("broken", rev)
    apps.wait_synced("healthy", rev)
    return rev


def _other_app_still_syncs(repo: GitRepo, apps: Apps, kube: KubeClient, namespace: str) -> None:
    repo.write("healthy/cm.yaml", configmap("fine", {"k": "new"}))
    rev = repo.commit()
    apps.annotate("healthy", **{REFRESH: rev})
    apps.wait_synced("healthy", rev)
    live = kube.get("v1", "ConfigMap", "fine", namespace)
    assert live is not None and live["data"] == {"k": "new"}


def test_bad_yaml_reports_file_and_line_and_prunes_nothing(
    reconciler: Reconciler, repo: GitRepo, apps: Apps, kube: KubeClient, namespace: str
) -> None:
    _two_apps(repo, apps)
    repo.write(
        "broken/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: one\ndata: [unclosed\n",
    )
    rev = repo.commit("break it")
    apps.annotate("broken", **{REFRESH: rev})
    obj = apps.wait(
        "broken", lambda o: condition(o, "Ready").get("reason") == "RenderFailed", "RenderFailed"
    )
    message = condition(obj, "Ready")["message"]
    assert re.search(r"broken/cm\.yaml:\d+: invalid YAML", message), message
    assert condition(obj, "Stalled")["status"] == "True"
    assert obj["status"]["sync"]["status"] == "Unknown"
    assert kube.get("v1", "ConfigMap", "two", namespace) is not None  # not pruned
    _other_app_still_syncs(repo, apps, kube, namespace)


def test_missing_path_is_reported_and_prunes_nothing(
    reconciler: Reconciler, repo: GitRepo, apps: Apps, kube: KubeClient, namespace: str
) -> None:
    _two_apps(repo, apps)
    repo.remove("broken")
    rev = repo.commit("remove the directory")
    apps.annotate("broken", **{REFRESH: rev})
    obj = apps.wait(
        "broken", lambda o: condition(o, "Ready").get("reason") == "PathNotFound", "PathNotFound"
    )
    assert "path 'broken' does not exist" in condition(obj, "Ready")["message"]
    # Issue 14: it could not compare, so not the Synced of the last good run.
    assert obj["status"]["sync"]["status"] == "Unknown"
    assert kube.get("v1", "ConfigMap", "one", namespace) is not None
    _other_app_still_syncs(repo, apps, kube, namespace)


def test_empty_path_is_reported_and_prunes_nothing(
    reconciler: Reconciler, repo: GitRepo, apps: Apps, kube: KubeClient, namespace: str
) -> None:
    _two_apps(repo, apps)
    repo.remove("broken/cm.yaml")
    repo.write("broken/README.md", "nothing here\n")
    rev = repo.commit("empty the directory")
    apps.annotate("broken", **{REFRESH: rev})
    obj = apps.wait(
        "broken", lambda o: condition(o, "Ready").get("reason") == "EmptyRender", "EmptyRender"
    )
    assert "holds no objects" in condition(obj, "Ready")["message"]
    assert kube.get("v1", "ConfigMap", "one", namespace) is not None
    assert kube.get("v1", "ConfigMap", "two", namespace) is not None
    assert len(obj["status"]["inventory"]) == 2


def test_object_rejected_by_the_api_server(
    reconciler: Reconciler, repo: GitRepo, apps: Apps, kube: KubeClient, namespace: str
) -> None:
    _two_apps(repo, apps)
    bad = configmap("Not_A_Valid_Name")
    repo.write("broken/cm.yaml", [configmap("one", {"k": "v2"}), bad])  # `two` removed
    rev = repo.commit("an invalid object")
    apps.annotate("broken", **{REFRESH: rev})
    obj = apps.wait(
        "broken", lambda o: condition(o, "Ready").get("reason") == "ApplyFailed", "ApplyFailed"
    )
    message = condition(obj, "Ready")["message"]
    assert "broken/cm.yaml:" in message and "Not_A_Valid_Name" in message
    assert "nothing was pruned" in message
    assert kube.get("v1", "ConfigMap", "two", namespace) is not None  # not pruned
    _other_app_still_syncs(repo, apps, kube, namespace)


def test_prune_breaker_holds_until_allowed(
    reconciler: Reconciler, repo: GitRepo, apps: Apps, kube: KubeClient, namespace: str
) -> None:
    repo.write("many/cm.yaml", [configmap(f"cm{i}") for i in range(4)])
    rev = repo.commit()
    apps.create("many", "many")
    apps.wait_synced("many", rev)
    repo.write("many/cm.yaml", [configmap("cm0")])
    rev = repo.commit("drop three of four")
    apps.annotate("many", **{REFRESH: rev})
    obj = apps.wait(
        "many", lambda o: condition(o, "Ready").get("reason") == "PruneBlocked", "PruneBlocked"
    )
    message = condition(obj, "Ready")["message"]
    assert "would prune 3 of the 4" in message and "allow-mass-prune" in message
    assert all(kube.get("v1", "ConfigMap", f"cm{i}", namespace) for i in range(4))
    assert obj["status"]["sync"]["status"] == "OutOfSync"
    apps.annotate("many", **{"gitops.platform.local/allow-mass-prune": rev[:12]})
    apps.wait_synced("many", rev)
    assert kube.get("v1", "ConfigMap", "cm1", namespace) is None
    assert kube.get("v1", "ConfigMap", "cm0", namespace) is not None


def test_prune_breaker_refuses_loose_overrides(
    reconciler: Reconciler, repo: GitRepo, apps: Apps, kube: KubeClient, namespace: str
) -> None:
    """Issue 14: a one-character prefix of the revision, or ` true ` with spaces, used to
    allow a mass prune; only `true`, the revision or a 7+ character short SHA may."""
    repo.write("many/cm.yaml", [configmap(f"cm{i}") for i in range(4)])
    rev = repo.commit()
    apps.create("loose", "many")
    apps.wait_synced("loose", rev)
    repo.write("many/cm.yaml", [configmap("cm0")])
    rev = repo.commit("drop three of four")
    apps.annotate("loose", **{REFRESH: rev})
    apps.wait(
        "loose", lambda o: condition(o, "Ready").get("reason") == "PruneBlocked", "PruneBlocked"
    )
    for attempt, value in enumerate([rev[:1], " true ", rev[:6], "TRUE"]):
        token = f"loose-{attempt}"
        apps.annotate("loose", **{"gitops.platform.local/allow-mass-prune": value, REFRESH: token})
        obj = apps.wait(
            "loose",
            lambda o, t=token: o["status"].get("lastHandledRefresh") == t,  # type: ignore[misc]
            f"the refresh {token} to be handled",
        )
        assert condition(obj, "Ready").get("reason") == "PruneBlocked", (value, obj["status"])
        assert all(kube.get("v1", "ConfigMap", f"cm{i}", namespace) for i in range(4)), value
    apps.annotate("loose", **{"gitops.platform.local/allow-mass-prune": rev[:7]})
    apps.wait_synced("loose", rev)
    assert kube.get("v1", "ConfigMap", "cm1", namespace) is None


def test_unreachable_source_backs_off_and_resumes(
    reconciler: Reconciler, repo: GitRepo, apps: Apps, kube: KubeClient, namespace: str
) -> None:
    repo.write("app/cm.yaml", configmap("kept"))
    rev = repo.commit()
    apps.create("remote", "app", interval="1h")
    apps.wait_synced("remote", rev)
    moved = repo.bare.with_name("moved.git")
    shutil.move(repo.bare, moved)
    apps.annotate("remote", **{REFRESH: "while-down"})
    obj = apps.wait(
        "remote", lambda o: condition(o, "Ready").get("reason") == "FetchFailed", "FetchFailed"
    )
    assert "failed to fetch" in condition(obj, "Ready")["message"]
    assert obj["status"]["sync"]["status"] == "Unknown"
    start = reconciler.metric('platform_reconciler_errors_total{reason="FetchFailed"}')
    time.sleep(7)
    attempts = reconciler.metric('platform_reconciler_errors_total{reason="FetchFailed"}') - start
    assert 1 <= attempts <= 4, f"{attempts} retries in 7s: not backing off"
    assert kube.get("v1", "ConfigMap", "kept", namespace) is not None
    shutil.move(moved, repo.bare)
    repo.write("app/cm.yaml", configmap("kept", {"k": "after"}))
    rev = repo.commit("after the outage")
    obj = apps.wait_synced("remote", rev, timeout=40)
    assert ready(obj) == "True"


def test_a_failed_delete_stays_in_the_inventory(
    cluster: KwokCluster,
    reconciler: Reconciler,
    repo: GitRepo,
    apps: Apps,
    kube: KubeClient,
    namespace: str,
) -> None:
    policy = f"no-delete-{namespace}"
    cluster.kubectl(
        "apply",
        "-f",
        "-",
        stdin=json.dumps(
            {
                "apiVersion": "v1",
                "kind": "List",
                "items": [
                    {
                        "apiVersion": "admissionregistration.k8s.io/v1",
                        "kind": "ValidatingAdmissionPolicy",
                        "metadata": {"name": policy},
                        "spec": {
                            "failurePolicy": "Fail",
                            "matchConstraints": {
                                "resourceRules": [
                                    {
                                        "apiGroups": [""],
                                        "apiVersions": ["v1"],
                                        "operations": ["DELETE"],
                                        "resources": ["configmaps"],
                                    }
                                ]
                            },
                            "validations": [
                                {
                                    "expression": "oldObject.metadata.name != 'undeletable'",
                                    "message": "this ConfigMap may not be deleted",
                                }
                            ],
                        },
                    },
                    {
                        "apiVersion": "admissionregistration.k8s.io/v1",
                        "kind": "ValidatingAdmissionPolicyBinding",
                        "metadata": {"name": policy},
                        "spec": {
                            "policyName": policy,
                            "validationActions": ["Deny"],
                            "matchResources": {
                                "namespaceSelector": {
                                    "matchLabels": {"kubernetes.io/metadata.name": namespace}
                                }
                            },
                        },
                    },
                ],
            }
        ),
    )
    kube.create(
        {**configmap("undeletable"), "metadata": {"name": "undeletable", "namespace": namespace}}
    )

    def refused() -> bool:  # the API server loads a new policy within a few seconds
        probe = cluster.kubectl(
            "delete", "configmap", "undeletable", "-n", namespace, "--dry-run=server", check=False
        )
        return "deleted" not in probe

    wait_until(refused, "the admission policy to be active", timeout=30)
    try:
        repo.write("app/cm.yaml", [configmap(n) for n in ("a", "b", "c", "undeletable")])
        rev = repo.commit()
        apps.create("stuck", "app")
        apps.wait_synced("stuck", rev)
        repo.write("app/cm.yaml", [configmap(n) for n in ("a", "b", "c")])
        rev = repo.commit("remove one")
        apps.annotate("stuck", **{REFRESH: rev})
        obj = apps.wait(
            "stuck",
            lambda o: condition(o, "Ready").get("reason") == "PruneFailed",
            "PruneFailed",
            timeout=60,
        )
        assert "may not be deleted" in condition(obj, "Ready")["message"]
        # Issue 14: an object still to prune is a difference from git, not Synced.
        assert obj["status"]["sync"]["status"] == "OutOfSync"
        assert [r["name"] for r in obj["status"]["resources"] if r.get("requiresPruning")] == [
            "undeletable"
        ]
        assert any(
            e["id"].startswith(f"{namespace}_undeletable_") for e in obj["status"]["inventory"]
        )
    finally:
        cluster.kubectl(
            "delete", "validatingadmissionpolicybinding", policy, "--wait=false", check=False
        )
        cluster.kubectl("delete", "validatingadmissionpolicy", policy, "--wait=false", check=False)
    obj = apps.wait(
        "stuck",
        lambda o: (
            not any("undeletable" in e["id"] for e in o["status"]["inventory"])
            and ready(o) == "True"
        ),
        "the retried prune to succeed",
        timeout=60,
    )
    assert kube.get("v1", "ConfigMap", "undeletable", namespace) is None
