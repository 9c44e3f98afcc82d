"""The reconciler as it runs for real: the shipped ServiceAccount and RBAC, leader election,
the push webhook from the project's git server, the cascade finalizer, SIGTERM."""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from stacks.kube.client import KubeClient
from stacks.kube.errors import Forbidden
from stacks.signing import sign
from tests.integration.reconciler.conftest import (
    MANIFESTS,
    WEBHOOK_SECRET,
    Apps,
    GitRepo,
    Reconciler,
    configmap,
    deployment,
    start_reconciler,
    wait_until,
)
from tests.support import processes
from tests.support.gitserver import READER, GitServer
from tests.support.kwok import KwokCluster

pytestmark = pytest.mark.integration


def test_cascade_finalizer_deletes_objects_and_its_absence_keeps_them(
    reconciler: Reconciler, repo: GitRepo, apps: Apps, kube: KubeClient, namespace: str
) -> None:
    repo.write("keep/cm.yaml", configmap("kept"))
    repo.write("drop/cm.yaml", [configmap("dropped"), deployment("dropped-web")])
    rev = repo.commit()
    apps.create("keep", "keep")
    apps.create("drop", "drop", finalizer=True)
    apps.wait_synced("keep", rev)
    apps.wait_synced("drop", rev)
    kube.delete("gitops.platform.local/v1alpha1", "Application", "keep", namespace)
    kube.delete("gitops.platform.local/v1alpha1", "Application", "drop", namespace)
    wait_until(
        lambda: (
            kube.get("gitops.platform.local/v1alpha1", "Application", "drop", namespace) is None
        ),
        "the cascading Application to go",
        timeout=20,
    )
    assert kube.get("v1", "ConfigMap", "dropped", namespace) is None
    assert kube.get("apps/v1", "Deployment", "dropped-web", namespace) is None
    assert kube.get("v1", "ConfigMap", "kept", namespace) is not None
    assert kube.get("gitops.platform.local/v1alpha1", "Application", "keep", namespace) is None


def test_sigterm_stops_gracefully(reconciler: Reconciler) -> None:
    processes.stop(reconciler.process)
    assert reconciler.process.returncode == 0
    assert "reconciler stopped" in reconciler.output()


# ---- the shipped ServiceAccount and RBAC -------------------------------------------------


@pytest.fixture(scope="module")
def installed_rbac(cluster: KwokCluster, crd: None) -> None:
    cluster.kubectl("apply", "--server-side", "-f", str(MANIFESTS / "00-namespace.yaml"))
    cluster.kubectl("apply", "--server-side", "-f", str(MANIFESTS / "20-rbac.yaml"))


@pytest.fixture
def service_account(
    kube: KubeClient, installed_rbac: None, tmp_path: Path
) -> Iterator[tuple[KubeClient, list[str]]]:
    token = kube.token_request("platform-system", "platform-reconciler", expiration_seconds=3600)
    token_file = tmp_path / "token"
    token_file.write_text(token)
    ca = kube.server_ca_file()
    client = KubeClient.from_token(kube.host, token, ca)
    args = [f"--server={kube.host}", f"--token-file={token_file}"]
    if ca:
        args.append(f"--ca-file={ca}")
    yield client, args
    client.close()


def test_runs_with_the_shipped_service_account_and_rbac(
    service_account: tuple[KubeClient, list[str]],
    repo: GitRepo,
    apps: Apps,
    kube: KubeClient,
    namespace: str,
    tmp_path: Path,
) -> None:
    sa, args = service_account
    lease = f"rbac-{uuid.uuid4().hex[:6]}"
    running = start_reconciler(
        tmp_path, [*args, f"--watch-namespace={namespace}", f"--lease-name={lease}"]
    )
    try:
        service = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"ports": [{"port": 80}], "selector": {"app": "web"}},
        }
        role = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "reader"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}],
        }
        repo.write("app/all.yaml", [configmap("cm"), deployment("web"), service, role])
        rev = repo.commit()
        apps.create("as-sa", "app", finalizer=True)
        apps.wait_synced("as-sa", rev)
        held = kube.get("coordination.k8s.io/v1", "Lease", lease, "platform-system")
        assert held is not None and held["spec"]["holderIdentity"]
        events = kube.list_objects("v1", "Event", namespace)
        assert any(e["reason"] == "Synced" for e in events)

        # Any kind, as Argo CD's controller (issue 19): what an Application may deliver
        # is its project's to decide, and only `platform` applies with these rights.
        priority_name = f"p-{uuid.uuid4().hex[:6]}"
        priority = {
            "apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass",
            "metadata": {"name": priority_name},
            "value": 1000,
        }
        repo.write("app/extra.yaml", priority)
        rev = repo.commit("a cluster-scoped kind")
        apps.annotate("as-sa", **{"gitops.platform.local/refresh": rev})
        apps.wait_synced("as-sa", rev)
        assert kube.get("scheduling.k8s.io/v1", "PriorityClass", priority_name)
        kube.delete("scheduling.k8s.io/v1", "PriorityClass", priority_name)
    finally:
        processes.stop(running.process)
    # It may act as a project's ServiceAccount; that identity has none of its rights.
    assert sa.self_subject_access("impersonate", "", "serviceaccounts", namespace)
    tenant = sa.impersonating(f"system:serviceaccount:{namespace}:nobody")
    assert not tenant.self_subject_access("delete", "", "nodes")
    assert not tenant.self_subject_access("create", "", "pods/exec", namespace)
    with pytest.raises(Forbidden):
        tenant.list_objects("v1", "PersistentVolume")
    with pytest.raises(Forbidden):
        tenant.get("v1", "Secret", "anything", "kube-system")


def test_leader_election_only_one_replica_acts(
    service_account: tuple[KubeClient, list[str]],
    repo: GitRepo,
    apps: Apps,
    kube: KubeClient,
    namespace: str,
    tmp_path: Path,
) -> None:
    _, args = service_account
    lease = f"le-{uuid.uuid4().hex[:6]}"
    common = [*args, f"--watch-namespace={namespace}", f"--lease-name={lease}"]
    first = start_reconciler(tmp_path, common, name="first")
    wait_until(
        lambda: (
            (kube.get("coordination.k8s.io/v1", "Lease", lease, "platform-system") or {})
            .get("spec", {})
            .get("holderIdentity")
            is not None
        ),
        "a leader",
    )
    second = start_reconciler(tmp_path, common, name="second")
    try:
        repo.write("app/cm.yaml", configmap("one"))
        rev = repo.commit()
        apps.create("led", "app")
        apps.wait_synced("led", rev)
        assert "synced Application" in first.output()
        assert "synced Application" not in second.output()
        assert "waiting to become the leader" in second.output()
        processes.stop(first.process)  # graceful: releases the Lease
        repo.write("app/cm.yaml", configmap("one", {"k": "after failover"}))
        rev = repo.commit()
        apps.annotate("led", **{"gitops.platform.local/refresh": rev})
        took = wait_until(
            lambda: (
                (kube.get("v1", "ConfigMap", "one", namespace) or {}).get("data")
                == {"k": "after failover"}
            ),
            "the second replica to take over",
            timeout=30,
        )
        assert took < 10
        assert "became the leader" in second.output()
    finally:
        processes.stop(first.process)
        processes.stop(second.process)


# ---- the push webhook from the real git server -------------------------------------------


def test_push_webhook_from_the_git_server_applies_within_a_second(
    cluster: KwokCluster,
    crd: None,
    git_server_factory: Callable[..., GitServer],
    kube: KubeClient,
    namespace: str,
    tmp_path: Path,
) -> None:
    running = start_reconciler(
        tmp_path,
        [
            f"--kubeconfig={cluster.kubeconfig}",
            f"--watch-namespace={namespace}",
            "--no-leader-elect",
        ],
    )
    try:
        server = git_server_factory(
            webhook_urls=[f"{running.url}/webhook"], webhook_secret=WEBHOOK_SECRET.encode()
        )
        url = server.create_repo("gitops")
        reader_password = server.passwords[READER]
        kube.create(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "git-reader", "namespace": namespace},
                "data": {
                    "username": base64.b64encode(READER.encode()).decode(),
                    "password": base64.b64encode(reader_password.encode()).decode(),
                },
            }
        )
        work = tmp_path / "clone"
        server.git("clone", "-q", url, str(work))
        server.git("checkout", "-q", "-B", "main", cwd=work)
        (work / "app").mkdir()

        def push(value: str) -> None:
            (work / "app" / "cm.yaml").write_text(json.dumps(configmap("pushed", {"k": value})))
            server.git("add", "-A", cwd=work)
            server.git("commit", "-q", "-m", value, cwd=work)
            server.git("push", "-q", "origin", "HEAD:main", cwd=work)

        push("first")
        app = {
            "apiVersion": "gitops.platform.local/v1alpha1",
            "kind": "Application",
            "metadata": {"name": "pushed", "namespace": namespace},
            "spec": {
                "source": {
                    "repoURL": url,
                    "path": "app",
                    "targetRevision": "main",
                    "secretRef": {"name": "git-reader"},
                },
                "destination": {"namespace": namespace},
                "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
                "interval": "1h",
            },
        }
        kube.create(app)
        wait_until(
            lambda: kube.get("v1", "ConfigMap", "pushed", namespace) is not None, "the first sync"
        )
        latencies = []
        for i in range(3):
            started = time.monotonic()
            push(f"push-{i}")
            wait_until(
                lambda i=i: (
                    (kube.get("v1", "ConfigMap", "pushed", namespace) or {}).get("data")
                    == {"k": f"push-{i}"}
                ),  # type: ignore[misc]
                "the push to be applied",
                timeout=10,
            )
            latencies.append(time.monotonic() - started)
        assert sorted(latencies)[1] < 1.5, latencies  # the bench measures the p50 goal (< 1 s)
        log = running.output() + json.dumps(
            kube.get("gitops.platform.local/v1alpha1", "Application", "pushed", namespace)
        )
        assert reader_password not in log
        assert "push to" in running.output()
    finally:
        processes.stop(running.process)


def test_webhook_refuses_a_bad_signature(reconciler: Reconciler) -> None:
    body = json.dumps(
        {"repo": "gitops", "ref": "refs/heads/main", "before": "a", "after": "b"}
    ).encode()

    def post(signature: str | None) -> int:
        request = urllib.request.Request(f"{reconciler.url}/webhook", data=body, method="POST")
        if signature is not None:
            request.add_header("X-Platform-Signature", signature)
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as error:
            return int(error.code)

    assert post(None) == 401
    assert post("sha256=" + "0" * 64) == 401
    assert post(sign(b"wrong secret", body)) == 401
    assert post(sign(WEBHOOK_SECRET.encode(), body)) == 202
