"""AppProject rules (stacks/reconciler/projects.py): Argo CD's semantics for repos,
destinations and kinds, the shipped `platform` and `default` projects, and who applies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from stacks.errors import PermanentError
from stacks.kube.objects import ObjectRef
from stacks.reconciler.projects import AppView, Project, evaluate

SHIPPED = Path(__file__).resolve().parents[3] / "stacks/reconciler/manifests/50-projects.yaml"
CONTROL = "platform-system"


def shipped(name: str) -> Project:
    for doc in yaml.safe_load_all(SHIPPED.read_text()):
        if doc["metadata"]["name"] == name:
            return Project.parse(doc)
    raise AssertionError(name)


def project(**spec: Any) -> Project:
    return Project.parse({"metadata": {"name": "p"}, "spec": spec})


def app(
    destination: str = "team-a",
    project_name: str = "default",
    namespace: str = CONTROL,
    repo: str = "http://git/tenants/a.git",
    server: str = "",
) -> AppView:
    return AppView(namespace, "app", project_name, repo, server, destination)


def ref(kind: str, namespace: str = "", group: str = "", name: str = "x") -> ObjectRef:
    return ObjectRef(group, kind, namespace, name, "v1")


def test_default_refuses_cluster_scoped_kinds_and_system_namespaces() -> None:
    default = shipped("default")
    verdict = evaluate(
        default,
        app(),
        [
            ref("ClusterRoleBinding", group="rbac.authorization.k8s.io", name="admin"),
            ref("ConfigMap", "kube-system"),
            ref("ConfigMap", "platform-git"),
            ref("ConfigMap", "team-a"),
            ref("Deployment", "team-a", "apps"),
        ],
        CONTROL,
    )
    assert not verdict.allowed
    text = verdict.message()
    assert len(verdict.refusals) == 3
    assert "rbac.authorization.k8s.io/ClusterRoleBinding 'admin'" in text
    assert "clusterResourceWhitelist" in text
    assert "ConfigMap 'kube-system/x': namespace 'kube-system' is not permitted" in text
    assert "ConfigMap 'platform-git/x'" in text
    assert "team-a" not in text.split("refused", 1)[1].replace("'team-a'", "")


def test_default_applies_as_the_destination_namespace_deployer() -> None:
    verdict = evaluate(shipped("default"), app("team-a"), [ref("ConfigMap", "team-a")], CONTROL)
    assert verdict.allowed
    assert verdict.user == "system:serviceaccount:team-a:gitops-deployer"


def test_platform_project_allows_anything_as_the_reconciler() -> None:
    platform = shipped("platform")
    verdict = evaluate(
        platform,
        app("kube-system", "platform"),
        [ref("ClusterRole", name="x"), ref("ConfigMap", "kube-system")],
        CONTROL,
    )
    assert verdict.allowed and verdict.user == ""


def test_platform_project_only_from_the_control_namespace() -> None:
    verdict = evaluate(
        shipped("platform"), app(namespace="team-a", project_name="platform"), [], CONTROL
    )
    assert not verdict.allowed
    assert "sourceNamespaces" in verdict.message()


def test_source_namespaces_let_other_namespaces_use_a_project() -> None:
    p = project(
        sourceRepos=["*"],
        destinations=[{"namespace": "team-a"}],
        sourceNamespaces=["team-*"],
        destinationServiceAccounts=[{"namespace": "*", "defaultServiceAccount": "d"}],
    )
    assert evaluate(p, app(namespace="team-a"), [], CONTROL).allowed
    assert not evaluate(p, app(namespace="other"), [], CONTROL).allowed


def test_source_repos_globs_and_negation() -> None:
    p = project(sourceRepos=["http://git/tenants/a.git"])
    assert p.repo_permitted("http://git/tenants/a.git")
    assert not p.repo_permitted("http://git/tenants/b.git")
    q = project(sourceRepos=["*", "!http://evil/*"])
    assert q.repo_permitted("http://git/x.git")
    assert not q.repo_permitted("http://evil/x.git")
    assert not project().repo_permitted("http://git/x.git")


def test_namespace_whitelist_absent_allows_all_and_empty_allows_none() -> None:
    assert project().kind_permitted("apps", "Deployment", True)
    assert not project(namespaceResourceWhitelist=[]).kind_permitted("apps", "Deployment", True)
    only = project(namespaceResourceWhitelist=[{"group": "apps", "kind": "*"}])
    assert only.kind_permitted("apps", "StatefulSet", True)
    assert not only.kind_permitted("", "Secret", True)
    black = project(namespaceResourceBlacklist=[{"group": "", "kind": "Secret"}])
    assert not black.kind_permitted("", "Secret", True)
    assert black.kind_permitted("", "ConfigMap", True)


def test_cluster_whitelist_empty_allows_none_and_blacklist_wins() -> None:
    assert not project().kind_permitted("", "Namespace", False)
    p = project(
        clusterResourceWhitelist=[{"group": "*", "kind": "*"}],
        clusterResourceBlacklist=[{"group": "rbac.authorization.k8s.io", "kind": "ClusterRole*"}],
    )
    assert p.kind_permitted("", "Namespace", False)
    assert not p.kind_permitted("rbac.authorization.k8s.io", "ClusterRoleBinding", False)


def test_a_blacklisted_kind_says_so() -> None:
    p = project(
        sourceRepos=["*"],
        destinations=[{"namespace": "*"}],
        namespaceResourceBlacklist=[{"group": "", "kind": "Secret"}],
        destinationServiceAccounts=[{"namespace": "*", "defaultServiceAccount": "d"}],
    )
    verdict = evaluate(p, app(), [ref("Secret", "team-a")], CONTROL)
    assert "is in namespaceResourceBlacklist" in verdict.message()


def test_other_servers_are_refused() -> None:
    verdict = evaluate(shipped("default"), app(server="https://elsewhere:6443"), [], CONTROL)
    assert "is not this cluster" in verdict.message()


def test_non_platform_project_without_service_account_is_refused() -> None:
    p = project(sourceRepos=["*"], destinations=[{"namespace": "*"}])
    verdict = evaluate(p, app(), [ref("ConfigMap", "team-a")], CONTROL)
    assert not verdict.allowed
    assert "destinationServiceAccounts" in verdict.message()


def test_service_account_with_namespace_prefix() -> None:
    p = project(
        sourceRepos=["*"],
        destinations=[{"namespace": "*"}],
        destinationServiceAccounts=[
            {"namespace": "team-a", "defaultServiceAccount": "team-a:deployer"},
            {"namespace": "*", "defaultServiceAccount": "fallback"},
        ],
    )
    assert evaluate(p, app("team-a"), [], CONTROL).user == "system:serviceaccount:team-a:deployer"
    assert evaluate(p, app("b"), [], CONTROL).user == "system:serviceaccount:b:fallback"


def test_refusal_message_is_bounded() -> None:
    refs = [ref("ConfigMap", "kube-system", name=f"c{i}") for i in range(50)]
    text = evaluate(shipped("default"), app(), refs, CONTROL).message()
    assert "refused 50 object(s)" in text and "(and 45 more)" in text
    assert len(text) < 2000


@pytest.mark.parametrize(
    "spec",
    [
        {"sourceRepos": "x"},
        {"sourceRepos": [1]},
        {"destinations": ["x"]},
        {"clusterResourceWhitelist": [{"kind": 3}]},
        {"sourceRepos": ["x"] * 1000},
        {"sourceRepos": ["x" * 10000]},
    ],
)
def test_malformed_projects_name_the_field(spec: dict[str, Any]) -> None:
    with pytest.raises(PermanentError) as caught:
        project(**spec)
    assert "AppProject 'p': spec." in str(caught.value)
