"""bootstrap/tenants.py, the pure parts: names, the committed objects, the users file."""

from __future__ import annotations

import pytest
import yaml

from bootstrap import tenants
from stacks.errors import PermanentError
from stacks.gitserver.auth import hash_password, parse_credentials
from stacks.kube.objects import ObjectRef
from stacks.reconciler.projects import AppView, Project, evaluate


@pytest.mark.parametrize(
    "name", ["default", "platform", "kube-system", "platform-git", "A", "-a", "a_b", "a" * 41, ""]
)
def test_names_that_cannot_be_tenants(name: str) -> None:
    with pytest.raises(PermanentError):
        tenants.validate(name)


def test_tenant_objects_confine_the_tenant() -> None:
    docs = list(
        yaml.safe_load_all(tenants.tenant_manifests("alice", "http://git/tenants/alice.git"))
    )
    kinds = {d["kind"]: d for d in docs}
    assert set(kinds) == {"Namespace", "ServiceAccount", "RoleBinding", "AppProject", "Application"}
    assert kinds["Namespace"]["metadata"]["annotations"]["gitops.platform.local/prune"] == "true"
    assert kinds["RoleBinding"]["roleRef"]["name"] == "edit"
    assert kinds["RoleBinding"]["metadata"]["namespace"] == "alice"
    assert kinds["Application"]["spec"]["project"] == "tenant-alice"
    project = Project.parse(kinds["AppProject"])
    app = AppView.of(kinds["Application"])
    ok = evaluate(
        project, app, [ObjectRef("apps", "Deployment", "alice", "web")], "platform-system"
    )
    assert ok.allowed and ok.user == "system:serviceaccount:alice:deployer"
    refused = evaluate(
        project,
        app,
        [ObjectRef("apps", "Deployment", "bob", "web"), ObjectRef("", "Namespace", "", "x")],
        "platform-system",
    )
    assert len(refused.refusals) == 2
    other_repo = AppView(app.namespace, app.name, app.project, "http://git/gitops.git", "", "alice")
    assert not evaluate(project, other_repo, [], "platform-system").allowed


def test_users_file_adds_and_removes_one_tenant_only() -> None:
    text = tenants.users_with("", "alice", hash_password("pa"))
    text = tenants.users_with(text, "bob", hash_password("pb"))
    creds = parse_credentials(text, hashed_only=True, repos_under="tenants/")
    alice = creds.check("alice", "pa")
    assert alice is not None and alice.repos == ("tenants/alice",)
    text = tenants.users_without(text, "bob")
    creds = parse_credentials(text, hashed_only=True, repos_under="tenants/")
    assert creds.check("bob", "pb") is None and creds.check("alice", "pa") is not None
    assert "pa" not in yaml.safe_load(text)["users"]["alice"].values()
