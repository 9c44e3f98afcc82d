"""Workshop tenants end to end (issue 19): `bootstrap.tenants` (what `platform tenant
add|remove|list` runs) against the real git server (with --repo-users), a real API
server and the real reconciler enforcing projects in platform-system.

A root Application (project `platform`) follows registry/test/ of the GitOps repository,
as `platform up` sets it up. Two tenants are added; tenant A pushes a Deployment and a
custom resource (its CRD and the ClusterRole that aggregates it to `edit` installed by
the platform) with its own login and they are delivered into its namespace, as its
ServiceAccount; the same manifests aimed at B's namespace are refused; A cannot clone
or push B's repository; the tenant ServiceAccount's rights are exactly its namespace's
`edit`; removing B deletes B's namespace, project, Application, repository and login and
leaves A as it was.
"""

from __future__ import annotations

import copy
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from bootstrap import tenants
from bootstrap.gitops.git_client import GitLogin
from stacks.kube.client import KubeClient
from stacks.reconciler.api import API_VERSION, KIND
from tests.integration.reconciler.conftest import (
    MANIFESTS,
    Reconciler,
    condition,
    deployment,
    start_reconciler,
)
from tests.support import processes
from tests.support.cli import run_platform
from tests.support.gitserver import ADMIN, READER, GitServer
from tests.support.kwok import KwokCluster
from tests.support.manifests import schemaless_crd

pytestmark = pytest.mark.integration

CONTROL = "platform-system"
CLUSTER = "test"


@dataclass
class Platform:
    git: GitServer
    place: tenants.GitPlace
    reconciler: Reconciler
    kube: KubeClient


def _git(work: Path, *args: str, env: dict[str, str]) -> None:
    subprocess.run(["git", *args], cwd=work, check=True, capture_output=True, env=env)


@pytest.fixture
def platform(
    cluster: KwokCluster,
    crd: None,
    kube: KubeClient,
    git_server_factory: Any,
    tmp_path: Path,
) -> Iterator[Platform]:
    for name in ("00-namespace.yaml", "11-crd-appproject.yaml"):
        cluster.kubectl("apply", "--server-side", "-f", str(MANIFESTS / name))
    cluster.wait_established("appprojects.gitops.platform.local")
    cluster.kubectl("apply", "--server-side", "-f", str(MANIFESTS / "50-projects.yaml"))
    git = git_server_factory(extra_args=["--repo-users", f"gitops:{tenants.USERS_FILE}"])
    git.create_repo("gitops")
    seed = tmp_path / "seed"
    git.git("init", "-q", "-b", "main", str(seed))
    # Other objects the root manages (the platform's Applications, in a real one), so
    # that removing one tenant is never most of what it manages (the prune breaker).
    fillers = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"filler-{i}", "namespace": CONTROL},
            "data": {"k": str(i)},
        }
        for i in range(6)
    ]
    (seed / "registry" / CLUSTER).mkdir(parents=True)
    (seed / "registry" / CLUSTER / "fillers.yaml").write_text(yaml.safe_dump_all(fillers))
    git.git("add", "-A", cwd=seed)
    git.git("commit", "-q", "-m", "seed", cwd=seed)
    git.git("push", "-q", git.repo_url("gitops"), "HEAD:main", cwd=seed)
    credentials = tmp_path / "git-credentials"
    credentials.write_text(f"http://{READER}:{git.passwords[READER]}@127.0.0.1:{git.port}\n")
    root_name = f"root-{uuid.uuid4().hex[:6]}"
    running = start_reconciler(
        tmp_path,
        [
            f"--kubeconfig={cluster.kubeconfig}",
            f"--watch-namespace={CONTROL}",
            f"--namespace={CONTROL}",
            f"--git-credentials-file={credentials}",
            "--projects",
            "--no-leader-elect",
            "--log-level=DEBUG",
        ],
    )
    kube.create(
        {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"name": root_name, "namespace": CONTROL},
            "spec": {
                "project": "platform",
                "source": {"repoURL": git.repo_url("gitops"), "path": f"registry/{CLUSTER}"},
                "destination": {"namespace": CONTROL},
                "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
                "interval": "1s",  # no webhook here: the root polls
            },
        }
    )
    place = tenants.GitPlace(
        base_url=git.url,
        cluster_base_url=git.url,
        gitops_url=git.repo_url("gitops"),
        cluster=CLUSTER,
        login=GitLogin(ADMIN, git.passwords[ADMIN]),
    )
    try:
        yield Platform(git, place, running, kube)
    finally:
        processes.stop(running.process)
        kube.delete(API_VERSION, KIND, root_name, CONTROL)


def application(kube: KubeClient, name: str) -> dict[str, Any] | None:
    return kube.get(API_VERSION, KIND, name, CONTROL)


def wait_app(kube: KubeClient, name: str, what: str, check: Any, timeout: float = 60) -> Any:
    last: dict[str, Any] = {}

    def ok() -> bool:
        nonlocal last
        last = application(kube, name) or {}
        return bool(last) and bool(check(last))

    try:
        processes.wait_for(ok, timeout=timeout, what=f"{name}: {what}", interval=0.2)
    except TimeoutError as error:
        raise AssertionError(
            f"{error}\n{yaml.safe_dump(last.get('status') or {})[:3000]}"
        ) from None
    return last


def synced_at(revision: str) -> Any:
    return lambda o: (
        (o.get("status") or {}).get("lastAppliedRevision") == revision
        and condition(o, "Ready").get("status") == "True"
    )


def push_as(git: GitServer, login: tenants.TenantLogin, work: Path, files: dict[str, Any]) -> str:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(work.parent),
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "http.extraHeader",
        "GIT_CONFIG_VALUE_0": "Authorization: Basic "
        + __import__("base64").b64encode(f"{login.username}:{login.password}".encode()).decode(),
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": login.name,
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": login.name,
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
    }
    if not work.exists():
        subprocess.run(
            ["git", "clone", "-q", login.clone_url, str(work)],
            check=True,
            capture_output=True,
            env=env,
        )
    for path, content in files.items():
        (work / path).write_text(yaml.safe_dump_all(content))
    _git(work, "add", "-A", env=env)
    _git(work, "commit", "-q", "-m", "deploy", env=env)
    _git(work, "push", "-q", "origin", "HEAD:main", env=env)
    out = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=work, check=True, capture_output=True, text=True
    )
    return out.stdout.strip()


def refresh(kube: KubeClient, name: str, value: str) -> None:
    kube.merge_patch(
        API_VERSION,
        KIND,
        name,
        {"metadata": {"annotations": {"gitops.platform.local/refresh": value}}},
        CONTROL,
    )


def can_i(kube: KubeClient, ns: str, verb: str, resource: str, where: str, group: str = "") -> bool:
    review = kube.create(
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": f"system:serviceaccount:{ns}:{tenants.SERVICE_ACCOUNT}",
                "groups": ["system:serviceaccounts", f"system:serviceaccounts:{ns}"],
                "resourceAttributes": {
                    "verb": verb,
                    "group": group,
                    "resource": resource,
                    "namespace": where,
                },
            },
        }
    )
    return bool(review["status"].get("allowed"))


def test_workshop_tenants(platform: Platform, tmp_path: Path) -> None:
    kube, git, place = platform.kube, platform.git, platform.place
    suffix = uuid.uuid4().hex[:5]
    a, b = f"ws-a-{suffix}", f"ws-b-{suffix}"
    # The platform installs a CRD and lets `edit` use its kind (aggregation).
    kube.apply(schemaless_crd("widgets.example.com", "Widget", "widgets"), "test")
    kube.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {
                "name": "widgets-edit",
                "labels": {"rbac.authorization.k8s.io/aggregate-to-edit": "true"},
            },
            "rules": [
                {
                    "apiGroups": ["widgets.example.com"],
                    "resources": ["widgets"],
                    "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
                }
            ],
        },
        "test",
    )

    login_a = tenants.add(place, a)
    login_b = tenants.add(place, b)
    assert login_a.clone_url == f"{git.url}/tenants/{a}.git"
    assert tenants.names(place) == sorted([a, b])
    with pytest.raises(Exception, match="exists already"):
        tenants.add(place, a)
    # The password is in no file of the GitOps repository.
    clone = tmp_path / "gitops-check"
    git.git("clone", "-q", git.repo_url("gitops"), str(clone))
    committed = "".join(p.read_text() for p in clone.rglob("*.yaml"))
    assert login_a.password not in committed and login_b.password not in committed

    # Both tenants' first syncs: an empty repository (a README) is Synced.
    for name in (a, b):
        wait_app(
            kube,
            f"tenant-{name}",
            "Synced",
            lambda o: condition(o, "Ready").get("status") == "True",
        )

    # A delivers a Deployment and a Widget into its namespace, as its ServiceAccount.
    widget = {"apiVersion": "widgets.example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    rev = push_as(git, login_a, tmp_path / "a", {"app.yaml": [deployment("web"), widget]})
    refresh(kube, f"tenant-{a}", rev)
    wait_app(kube, f"tenant-{a}", f"synced at {rev[:8]}", synced_at(rev))
    assert kube.get("apps/v1", "Deployment", "web", a) is not None
    assert kube.get("widgets.example.com/v1", "Widget", "w", a) is not None

    # The same manifests aimed at B's namespace: refused, nothing applied there.
    astray = [copy.deepcopy(deployment("web")), copy.deepcopy(widget)]
    for obj in astray:
        obj["metadata"]["namespace"] = b
    rev = push_as(git, login_a, tmp_path / "a", {"app.yaml": astray})
    refresh(kube, f"tenant-{a}", rev)
    obj = wait_app(
        kube,
        f"tenant-{a}",
        "PolicyDenied",
        lambda o: condition(o, "Ready").get("reason") == "PolicyDenied",
    )
    message = condition(obj, "Ready")["message"]
    assert f"apps/Deployment '{b}/web'" in message and f"Widget '{b}/w'" in message
    assert kube.get("apps/v1", "Deployment", "web", b) is None
    assert kube.get("apps/v1", "Deployment", "web", a) is not None  # nothing pruned either

    # A cannot clone or push B's repository.
    env = dict(git.git_env())
    env["GIT_CONFIG_VALUE_0"] = (
        "Authorization: Basic "
        + __import__("base64").b64encode(f"{login_a.username}:{login_a.password}".encode()).decode()
    )
    denied = subprocess.run(
        ["git", "clone", "-q", login_b.clone_url, str(tmp_path / "steal")],
        capture_output=True,
        text=True,
        env={**env, "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert denied.returncode != 0 and "403" in denied.stderr
    pushed = subprocess.run(
        ["git", "push", "-q", login_b.clone_url, "HEAD:main"],
        cwd=tmp_path / "a",
        capture_output=True,
        text=True,
        env={**env, "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert pushed.returncode != 0 and "403" in pushed.stderr

    # The tenant ServiceAccount's rights: its namespace's `edit`, nothing more.
    assert can_i(kube, a, "create", "deployments", a, "apps")
    assert can_i(kube, a, "create", "widgets", a, "widgets.example.com")
    assert can_i(kube, a, "get", "secrets", a)
    assert not can_i(kube, a, "create", "deployments", b, "apps")
    assert not can_i(kube, a, "get", "secrets", b)
    assert not can_i(kube, a, "get", "secrets", "kube-system")
    assert not can_i(kube, a, "create", "rolebindings", a, "rbac.authorization.k8s.io")
    assert not can_i(kube, a, "create", "clusterrolebindings", "", "rbac.authorization.k8s.io")
    assert not can_i(kube, a, "create", "namespaces", "")
    assert not can_i(kube, a, "create", "applications", a, "gitops.platform.local")
    assert not can_i(kube, a, "patch", "appprojects", CONTROL, "gitops.platform.local")

    # Removing B deletes what `add` made, and leaves A alone.
    assert tenants.remove(place, b)
    assert tenants.names(place) == [a]

    def b_gone() -> bool:
        ns = kube.get("v1", "Namespace", b)
        return (
            application(kube, f"tenant-{b}") is None
            and kube.get("gitops.platform.local/v1alpha1", "AppProject", f"tenant-{b}", CONTROL)
            is None
            and (ns is None or bool(ns["metadata"].get("deletionTimestamp")))
        )

    processes.wait_for(b_gone, timeout=60, what=f"tenant {b} to be deleted", interval=0.3)
    _, listing = git.api("GET", "/api/repos")
    assert f"tenants/{b}" not in listing["repos"] and f"tenants/{a}" in listing["repos"]
    assert kube.get("apps/v1", "Deployment", "web", a) is not None
    assert application(kube, f"tenant-{a}") is not None
    assert kube.get("gitops.platform.local/v1alpha1", "AppProject", f"tenant-{a}", CONTROL)
    tenants.remove(place, a)
    kube.delete("apiextensions.k8s.io/v1", "CustomResourceDefinition", "widgets.example.com")
    kube.delete("rbac.authorization.k8s.io/v1", "ClusterRole", "widgets-edit")


def test_tenant_commands(platform: Platform, cluster: KwokCluster, tmp_path: Path) -> None:
    """`platform tenant add|list|remove` against the same git server (git.url set, as
    with an existing one): the login is printed once, in no log."""
    password_file = tmp_path / "git-password"
    password_file.write_text(platform.git.passwords[ADMIN])
    env = {
        "PLATFORM_ENGINE": "existing",
        "PLATFORM_KUBECONFIG": str(cluster.kubeconfig),
        "PLATFORM_GIT_URL": platform.git.url,
        "PLATFORM_GIT_USERNAME": ADMIN,
        "PLATFORM_GIT_PASSWORD_FILE": str(password_file),
    }
    name = f"cli-{uuid.uuid4().hex[:5]}"
    added = run_platform("tenant", "add", name, "--name", CLUSTER, env=env)
    assert added.returncode == 0, added.stdout + added.stderr
    lines = dict(line.split(": ", 1) for line in added.stdout.splitlines() if ": " in line)
    assert lines["url"] == f"{platform.git.url}/tenants/{name}.git"
    assert lines["username"] == name and len(lines["password"]) >= 20
    listed = run_platform("tenant", "list", "--name", CLUSTER, env=env)
    assert name in listed.stdout.split()
    logs = "".join(p.read_text(errors="replace") for p in Path.home().rglob("*.log"))
    assert lines["password"] not in logs
    removed = run_platform("tenant", "remove", name, "--name", CLUSTER, env=env)
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert name not in run_platform("tenant", "list", "--name", CLUSTER, env=env).stdout.split()
    bad = run_platform("tenant", "add", "kube-system", "--name", CLUSTER, env=env)
    assert bad.returncode != 0 and "cannot name a tenant" in bad.stdout + bad.stderr
