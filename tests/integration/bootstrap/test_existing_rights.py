"""`platform doctor` and `platform up --engine existing` check the kubeconfig's identity
before installing anything: against the real API server, with real ServiceAccounts whose
rights are set by real RBAC.

An identity that may install everything but not port-forward can still run the platform
when Vault and git are reached through the ingress, so whether `create pods/portforward`
is required depends on `vault.access` and `git.access`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import json_events, run_platform
from tests.support.kwok import KwokCluster
from tests.support.manifests import cluster_role_for

pytestmark = pytest.mark.integration

INGRESS_ONLY = {"PLATFORM_VAULT_ACCESS": "ingress", "PLATFORM_GIT_ACCESS": "ingress"}


def doctor(kubeconfig: Path, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    result = run_platform(
        "doctor", "--engine", "existing", "--kubeconfig", str(kubeconfig), "-o", "json", env=env
    )
    [report] = [event for event in json_events(result.stdout) if "checks" in event]
    return result.returncode, {check["name"]: check for check in report["checks"]}


@pytest.fixture
def installer_without_port_forward(
    cluster: KwokCluster, namespace: str, tmp_path: Path
) -> Iterator[Path]:
    """A kubeconfig whose identity may create what the platform installs, and nothing else."""
    kubeconfig = cluster.service_account_kubeconfig(
        namespace, "installer", tmp_path / "installer.kubeconfig"
    )
    role = f"{namespace}-installer"
    rules = [
        {"apiGroups": [""], "resources": ["namespaces", "secrets"], "verbs": ["create"]},
        {
            "apiGroups": ["apiextensions.k8s.io"],
            "resources": ["customresourcedefinitions"],
            "verbs": ["create"],
        },
        {
            "apiGroups": ["rbac.authorization.k8s.io"],
            "resources": ["clusterroles", "clusterrolebindings"],
            "verbs": ["create"],
        },
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["create"]},
    ]
    objects = cluster_role_for(role, rules, namespace, "installer")
    cluster.kubectl(
        "apply", "-f", "-", stdin=json.dumps({"kind": "List", "apiVersion": "v1", "items": objects})
    )
    try:
        yield kubeconfig
    finally:
        cluster.kubectl("delete", "clusterrolebinding,clusterrole", role, check=False)


def test_doctor_passes_an_admin_and_names_every_right_it_checked(cluster: KwokCluster) -> None:
    code, checks = doctor(cluster.kubeconfig)
    assert code == 0, checks
    assert checks["cluster"]["ok"] and "Kubernetes v1.34" in checks["cluster"]["detail"]
    assert checks["permissions"]["ok"]
    assert "create pods/portforward" in checks["permissions"]["detail"]
    # The test cluster has no volume provisioner: a warning, not a stop.
    assert not checks["storage"]["ok"] and not checks["storage"]["blocking"]
    assert "no default StorageClass" in checks["storage"]["detail"]
    assert "PersistentVolumes" in checks["storage"]["fix"]


def test_doctor_sees_a_default_storage_class(cluster: KwokCluster) -> None:
    storage_class = {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": "t-default",
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": "example.test/none",
    }
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(storage_class))
    try:
        code, checks = doctor(cluster.kubeconfig)
    finally:
        # Other tests bind claims to static volumes: a default class would capture them.
        cluster.kubectl("delete", "storageclass", "t-default", "--wait=true")
    assert code == 0, checks
    assert checks["storage"]["ok"]
    assert checks["storage"]["detail"] == "the cluster has a default StorageClass"


def test_an_identity_with_no_rights_is_told_each_missing_one(
    cluster: KwokCluster, namespace: str, tmp_path: Path
) -> None:
    nobody = cluster.service_account_kubeconfig(namespace, "nobody", tmp_path / "nobody")
    code, checks = doctor(nobody)
    assert code == 1
    assert checks["cluster"]["ok"]  # it answers; the version is readable by anyone
    detail = checks["permissions"]["detail"]
    assert not checks["permissions"]["ok"]
    for right in (
        "create namespaces",
        "create customresourcedefinitions.apiextensions.k8s.io",
        "create clusterrolebindings.rbac.authorization.k8s.io",
        "create pods/portforward",
    ):
        assert right in detail
    assert "cluster-admin context" in checks["permissions"]["fix"]


def test_port_forward_right_is_required_only_when_vault_or_git_use_it(
    installer_without_port_forward: Path,
) -> None:
    code, checks = doctor(installer_without_port_forward)
    assert code == 1
    assert checks["permissions"]["detail"] == (
        "the kubeconfig's identity may not create pods/portforward in this cluster"
    )

    code, checks = doctor(installer_without_port_forward, env=INGRESS_ONLY)
    assert code == 0, checks
    assert "pods/portforward" not in checks["permissions"]["detail"]


def test_up_stops_at_the_cluster_stage_before_installing_anything(
    cluster: KwokCluster, installer_without_port_forward: Path
) -> None:
    namespaces_before = set(cluster.kubectl("get", "namespaces", "-o", "name").split())
    up = run_platform(
        "up", "--engine", "existing", "--kubeconfig", str(installer_without_port_forward)
    )
    assert up.returncode == 1, up.stdout + up.stderr
    output = up.stdout + up.stderr
    assert "may not create pods/portforward" in output
    assert "cluster-admin context" in output
    # No namespace was created (an earlier test's namespace, deleted without waiting, may
    # finish terminating meanwhile: a subset, not equality).
    assert set(cluster.kubectl("get", "namespaces", "-o", "name").split()) <= namespaces_before


def test_an_unreachable_kubeconfig_is_a_failed_check_not_a_crash(tmp_path: Path) -> None:
    code, checks = doctor(tmp_path / "missing.kubeconfig")
    assert code == 1
    assert not checks["cluster"]["ok"]
    assert "cannot load" in checks["cluster"]["detail"]
    assert "--kubeconfig" in checks["cluster"]["fix"]
