"""Projects and impersonation (issue 19) against a real API server, real git and the real
reconciler process: the shipped `default` project refuses cluster-scoped kinds and
system namespaces before anything is applied; a missing project does nothing and says
why; a tenant project applies as its ServiceAccount, so the API server refuses what its
RBAC does not grant; a custom resource whose CRD the `platform` project installed is
delivered into the tenant's namespace and refused in another tenant's.

The reconciler runs with `--projects` and finds the AppProjects in the test's namespace
(its `--namespace`), where the test's Applications live too."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from stacks.kube.client import KubeClient
from stacks.reconciler.api import API_VERSION, KIND
from tests.integration.reconciler.conftest import (
    MANIFESTS,
    Apps,
    GitRepo,
    Reconciler,
    condition,
    configmap,
    deployment,
    start_reconciler,
)
from tests.support import processes
from tests.support.kwok import KwokCluster
from tests.support.manifests import schemaless_crd

pytestmark = pytest.mark.integration

PROJECTS = MANIFESTS / "50-projects.yaml"


@pytest.fixture(scope="session")
def project_crd(cluster: KwokCluster) -> None:
    cluster.kubectl("apply", "--server-side", "-f", str(MANIFESTS / "11-crd-appproject.yaml"))
    cluster.wait_established("appprojects.gitops.platform.local")


@pytest.fixture
def enforcing(
    cluster: KwokCluster, crd: None, project_crd: None, namespace: str, tmp_path: Path
) -> Iterator[Reconciler]:
    running = start_reconciler(
        tmp_path,
        [
            f"--kubeconfig={cluster.kubeconfig}",
            f"--watch-namespace={namespace}",
            f"--namespace={namespace}",
            "--projects",
            "--no-leader-elect",
            "--log-level=DEBUG",
        ],
    )
    yield running
    processes.stop(running.process)


def shipped_projects(namespace: str) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(PROJECTS.read_text()) if d]
    for doc in docs:
        doc["metadata"]["namespace"] = namespace
    return docs


def application(
    namespace: str,
    name: str,
    repo: GitRepo,
    path: str,
    destination: str,
    project: str = "",
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "source": {"repoURL": repo.url, "path": path, "targetRevision": "main"},
        "destination": {"namespace": destination},
        "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
        "interval": "3m",
    }
    if project:
        spec["project"] = project
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def tenant_project(namespace: str, name: str, destination: str, repo_url: str) -> dict[str, Any]:
    """What `platform tenant add` makes: one namespace, one repository, its ServiceAccount."""
    return {
        "apiVersion": "gitops.platform.local/v1alpha1",
        "kind": "AppProject",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "sourceRepos": [repo_url],
            "destinations": [{"server": "*", "namespace": destination}],
            "clusterResourceWhitelist": [],
            "destinationServiceAccounts": [
                {
                    "server": "*",
                    "namespace": "*",
                    "defaultServiceAccount": f"{destination}:deployer",
                }
            ],
        },
    }


def tenant_rbac(kube: KubeClient, tenant: str) -> None:
    """Namespace, ServiceAccount `deployer`, a Role over the namespace's common kinds and
    the example custom resources, and its RoleBinding."""
    objects: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": tenant}},
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "deployer", "namespace": tenant},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "deployer", "namespace": tenant},
            "rules": [
                {
                    "apiGroups": ["", "apps", "widgets.example.com"],
                    "resources": ["configmaps", "deployments", "services", "widgets"],
                    "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
                }
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "deployer", "namespace": tenant},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "deployer",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "deployer", "namespace": tenant}],
        },
    ]
    for obj in objects:
        kube.apply(obj, "test")


def wait_ready(apps: Apps, name: str, status: str, reason: str = "", timeout: float = 30) -> Any:
    def check(o: dict[str, Any]) -> bool:
        ready = condition(o, "Ready")
        return ready.get("status") == status and (not reason or ready.get("reason") == reason)

    return apps.wait(name, check, f"Ready={status} {reason}", timeout)


def warning_events(kube: KubeClient, namespace: str, name: str, reason: str) -> list[Any]:
    return [
        e
        for e in kube.list_objects("v1", "Event", namespace)
        if e.get("type") == "Warning"
        and e.get("reason") == reason
        and (e.get("involvedObject") or {}).get("name") == name
    ]


def test_default_refuses_cluster_admin_and_kube_system_and_applies_nothing(
    enforcing: Reconciler, repo: GitRepo, apps: Apps, kube: KubeClient, namespace: str
) -> None:
    for project in shipped_projects(namespace):
        kube.apply(project, "test")
    target = f"t-{uuid.uuid4().hex[:8]}"
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": target}}, "test")
    binding = f"pwn-{uuid.uuid4().hex[:6]}"
    hostile = copy.deepcopy(configmap("hostile"))
    hostile["metadata"]["namespace"] = "kube-system"
    repo.write(
        "evil/all.yaml",
        [
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": binding},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "cluster-admin",
                },
                "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": target}],
            },
            hostile,
            configmap("innocent"),
        ],
    )
    repo.commit("escalate")
    kube.create(application(namespace, "evil", repo, "evil", target))  # no spec.project
    obj = wait_ready(apps, "evil", "False", "PolicyDenied")
    message = condition(obj, "Ready")["message"]
    assert "project 'default' refused 2 object(s)" in message
    assert f"ClusterRoleBinding '{binding}'" in message
    assert "clusterResourceWhitelist" in message
    assert "ConfigMap 'kube-system/hostile'" in message
    assert "spec.destinations of AppProject 'default'" in message  # how to allow it
    assert kube.get("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", binding) is None
    assert kube.get("v1", "ConfigMap", "hostile", "kube-system") is None
    assert kube.get("v1", "ConfigMap", "innocent", target) is None  # nothing half-applied
    processes.wait_for(
        lambda: bool(warning_events(kube, namespace, "evil", "PolicyDenied")),
        timeout=10,
        what="a PolicyDenied Warning event",
    )


def test_a_missing_project_does_nothing_and_says_why(
    enforcing: Reconciler, repo: GitRepo, apps: Apps, kube: KubeClient, namespace: str
) -> None:
    repo.write("plain/cm.yaml", configmap("plain"))
    repo.commit()
    kube.create(application(namespace, "lost", repo, "plain", namespace, project="nope"))
    obj = wait_ready(apps, "lost", "False", "ProjectNotFound")
    assert "project 'nope' does not exist" in condition(obj, "Ready")["message"]
    assert kube.get("v1", "ConfigMap", "plain", namespace) is None
    processes.wait_for(
        lambda: bool(warning_events(kube, namespace, "lost", "ProjectNotFound")),
        timeout=10,
        what="a ProjectNotFound Warning event",
    )


def test_tenant_applies_as_its_service_account(
    enforcing: Reconciler, repo: GitRepo, apps: Apps, kube: KubeClient, namespace: str
) -> None:
    """A project that allows every namespace but applies as tenant A's ServiceAccount:
    the API server refuses A's write of a Secret into B's namespace, and says so."""
    suffix = uuid.uuid4().hex[:6]
    a, b = f"ta-{suffix}", f"tb-{suffix}"
    tenant_rbac(kube, a)
    tenant_rbac(kube, b)
    wide = tenant_project(namespace, "wide", a, repo.url)
    wide["spec"]["destinations"] = [{"server": "*", "namespace": "*"}]
    kube.apply(wide, "test")
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "stolen", "namespace": b},
        "stringData": {"k": "v"},
    }
    repo.write("wide/all.yaml", [configmap("mine"), secret])
    repo.commit()
    kube.create(application(namespace, "wide", repo, "wide", a, project="wide"))
    obj = wait_ready(apps, "wide", "False", "ApplyFailed")
    message = condition(obj, "Ready")["message"]
    assert f"system:serviceaccount:{a}:deployer" in message
    assert "forbidden" in message and f'"{b}"' in message
    assert kube.get("v1", "Secret", "stolen", b) is None
    assert kube.get("v1", "ConfigMap", "mine", a) is not None  # within its rights


def test_tenant_custom_resource_in_its_namespace_and_not_in_another(
    enforcing: Reconciler, repo: GitRepo, apps: Apps, kube: KubeClient, namespace: str
) -> None:
    suffix = uuid.uuid4().hex[:6]
    a, b = f"ca-{suffix}", f"cb-{suffix}"
    tenant_rbac(kube, a)
    tenant_rbac(kube, b)
    for project in shipped_projects(namespace):
        kube.apply(project, "test")
    kube.apply(tenant_project(namespace, a, a, repo.url), "test")
    # The platform project installs the CRD (cluster-scoped: only it may).
    repo.write("crds/widget.yaml", schemaless_crd("widgets.example.com", "Widget", "widgets"))
    widget: dict[str, Any] = {
        "apiVersion": "widgets.example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w"},
    }
    repo.write("tenant/all.yaml", [deployment("web"), widget])
    elsewhere = copy.deepcopy(widget)
    elsewhere["metadata"]["namespace"] = b
    web_b = deployment("web")
    web_b["metadata"]["namespace"] = b
    repo.write("astray/all.yaml", [web_b, elsewhere])
    rev = repo.commit()
    kube.create(application(namespace, "crds", repo, "crds", namespace, project="platform"))
    apps.wait_synced("crds", rev)
    kube.create(application(namespace, "tenant", repo, "tenant", a, project=a))
    apps.wait_synced("tenant", rev, timeout=60)
    assert kube.get("widgets.example.com/v1", "Widget", "w", a) is not None
    assert kube.get("apps/v1", "Deployment", "web", a) is not None
    kube.create(application(namespace, "astray", repo, "astray", a, project=a))
    obj = wait_ready(apps, "astray", "False", "PolicyDenied")
    message = condition(obj, "Ready")["message"]
    assert f"widgets.example.com/Widget '{b}/w'" in message
    assert f"apps/Deployment '{b}/web'" in message
    assert kube.get("widgets.example.com/v1", "Widget", "w", b) is None
    kube.delete("apiextensions.k8s.io/v1", "CustomResourceDefinition", "widgets.example.com")


def can_i(kube: KubeClient, user: str, verb: str, resource: str, ns: str, group: str = "") -> bool:
    review = kube.create(
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": user,
                "groups": [
                    "system:serviceaccounts",
                    f"system:serviceaccounts:{user.split(':')[2]}",
                ],
                "resourceAttributes": {
                    "verb": verb,
                    "group": group,
                    "resource": resource,
                    "namespace": ns,
                },
            },
        }
    )
    return bool(review["status"].get("allowed"))


def test_tenant_service_account_has_exactly_its_rights(kube: KubeClient) -> None:
    suffix = uuid.uuid4().hex[:6]
    a, b = f"ra-{suffix}", f"rb-{suffix}"
    tenant_rbac(kube, a)
    tenant_rbac(kube, b)
    user = f"system:serviceaccount:{a}:deployer"
    assert can_i(kube, user, "patch", "deployments", a, "apps")
    assert can_i(kube, user, "create", "widgets", a, "widgets.example.com")
    assert not can_i(kube, user, "patch", "deployments", b, "apps")
    assert not can_i(kube, user, "get", "secrets", b)
    assert not can_i(kube, user, "get", "secrets", a)
    assert not can_i(kube, user, "create", "clusterrolebindings", "", "rbac.authorization.k8s.io")
    assert not can_i(kube, user, "create", "rolebindings", a, "rbac.authorization.k8s.io")
    assert not can_i(kube, user, "create", "applications", a, "gitops.platform.local")
