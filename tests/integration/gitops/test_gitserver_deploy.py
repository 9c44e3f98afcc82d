"""The `gitserver` stage's deploy path (no git.url) against the real kube-apiserver.

kwok runs no containers, so the server itself cannot answer through its Ingress here:
the first test proves what the stage applies (the generated credentials and webhook
Secrets, the shipped manifests), that it waits for the Deployment and then for
http://git.<domain> with a clear stop, and that `remove` deletes what it created. The
second takes the port-forward way (`--engine existing`): kwok forwards the pod's port to
the project's real git server started with the credentials the stage generated, so the
repository is created and seeded through the Kubernetes API, as on a real cluster."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bootstrap.gitops.source import READONLY_PASSWORD_SECRET
from bootstrap.images import COMPONENT_IMAGE
from bootstrap.stages.gitserver import (
    CREDENTIALS_SECRET,
    DEPLOYMENT,
    INGRESS_PATIENCE,
    NAMESPACE,
    PASSWORD_SECRET,
    WEBHOOK_SECRET,
    GitServerStage,
)
from bootstrap.stages.reconciler import WEBHOOK_SECRET_FILE
from stacks.errors import PermanentError, WaitingError
from stacks.gitserver.auth import Access, parse_credentials
from tests.integration.gitops.conftest import MakeContext, progress_lines
from tests.support import processes
from tests.support.kwok import KwokCluster

pytestmark = pytest.mark.integration


@pytest.fixture
def volume(cluster: KwokCluster) -> Iterator[None]:
    """A PersistentVolume for the server's claim (the test cluster has no provisioner)."""
    pv = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": "t-gitserver-data"},
        "spec": {
            "capacity": {"storage": "2Gi"},
            "accessModes": ["ReadWriteOnce"],
            "hostPath": {"path": "/tmp/t-gitserver-data"},
            "claimRef": {"namespace": NAMESPACE, "name": "platform-gitserver-data"},
        },
    }
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(pv))
    yield
    cluster.kubectl("delete", "pv", "t-gitserver-data", "--ignore-not-found", "--wait=false")


def test_deploy_applies_the_server_with_generated_secrets_and_remove_deletes_it(
    cluster: KwokCluster, make_context: MakeContext, debug_log: Path, volume: None
) -> None:
    # Through the Ingress (what k3d gives); the port-forward way has its own test below.
    ctx = make_context(kubeconfig=cluster.kubeconfig, name="gdeploy", PLATFORM_GIT_ACCESS="ingress")
    stage = GitServerStage()
    try:
        deadline = time.monotonic() + 90
        message = ""
        seen = set()
        while time.monotonic() < deadline:
            try:
                stage.run(ctx)
            except WaitingError as waiting:
                message = str(waiting)
                seen.add(message.split(":")[0])
                if "git.gitops.test" in message:
                    break
                time.sleep(1)
        assert "waiting for Deployment 'platform-git/platform-gitserver'" in seen
        assert message.startswith("waiting for http://git.gitops.test to answer"), message

        client = ctx.kube()
        secret = client.get("v1", "Secret", CREDENTIALS_SECRET, NAMESPACE)
        assert secret is not None
        document = base64.b64decode(secret["data"]["credentials.yaml"]).decode()
        credentials = parse_credentials(document)
        rw = (ctx.state.read_secret(PASSWORD_SECRET) or "").strip()
        ro = (ctx.state.read_secret(READONLY_PASSWORD_SECRET) or "").strip()
        assert rw and ro and rw != ro
        assert credentials.check("platform", rw) is not None
        assert credentials.check("platform", rw).access is Access.WRITE  # type: ignore[union-attr]
        assert credentials.check("cluster", ro).access is Access.READ  # type: ignore[union-attr]
        for name in (PASSWORD_SECRET, READONLY_PASSWORD_SECRET):
            assert (ctx.state.secrets_dir / name).stat().st_mode & 0o777 == 0o600
        hook = client.get("v1", "Secret", WEBHOOK_SECRET, NAMESPACE)
        assert hook is not None
        assert (
            base64.b64decode(hook["data"]["secret"]).decode()
            == (ctx.state.read_secret(WEBHOOK_SECRET_FILE) or "").strip()
        )
        deployment = client.get("apps/v1", "Deployment", DEPLOYMENT, NAMESPACE)
        assert deployment is not None
        assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == COMPONENT_IMAGE
        ingress = client.get("networking.k8s.io/v1", "Ingress", DEPLOYMENT, NAMESPACE)
        assert ingress is not None and ingress["spec"]["rules"][0]["host"] == "git.gitops.test"

        # Re-running keeps the passwords (the Secret does not change).
        ctx.facts["gitserver_ingress_since"] = time.monotonic() - INGRESS_PATIENCE - 1
        with pytest.raises(PermanentError) as caught:
            stage.run(ctx)
        assert "does not reach it" in str(caught.value) and "git.url" in caught.value.hint
        assert (ctx.state.read_secret(PASSWORD_SECRET) or "").strip() == rw
        again = client.get("v1", "Secret", CREDENTIALS_SECRET, NAMESPACE)
        assert again is not None and again["data"] == secret["data"]
        assert not stage.check(ctx).done
        assert rw not in debug_log.read_text() and ro not in debug_log.read_text()
        assert rw not in json.dumps(progress_lines(ctx))
    finally:
        removed = stage.remove(ctx)
    assert removed == f"deleted namespace {NAMESPACE} (the git server and its repositories)"
    assert ctx.kube().get("v1", "Namespace", NAMESPACE) is None
    assert stage.remove(ctx) == ""


def test_waiting_for_the_server_says_why_it_does_not_start(
    cluster: KwokCluster, make_context: MakeContext
) -> None:
    """No volume for its claim (the test cluster has no provisioner): the wait names the
    claim and the PV controller's reason, not just "0/1 ready"."""
    ctx = make_context(
        kubeconfig=cluster.kubeconfig, name="gnovolume", PLATFORM_GIT_ACCESS="ingress"
    )
    stage = GitServerStage()
    message = ""
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "no persistent volumes available" not in message:
            with pytest.raises(WaitingError) as waiting:
                stage.run(ctx)
            message = str(waiting.value)
            time.sleep(1)
        assert message.startswith(
            "waiting for Deployment 'platform-git/platform-gitserver': Waiting for rollout"
        ), message
        assert "; PersistentVolumeClaim 'platform-gitserver-data' is Pending: " in message
        assert "no persistent volumes available for this claim" in message
    finally:
        stage.remove(ctx)


def test_deployed_server_is_reached_and_seeded_through_a_port_forward(
    cluster: KwokCluster, make_context: MakeContext, volume: None, tmp_path: Path
) -> None:
    from bootstrap.forwards import close_port_forwards, git_through_port_forward
    from bootstrap.stages.seed import SeedStage
    from tests.support.gitserver import GitServer
    from tests.support.stages import run_until_done

    ctx = make_context(kubeconfig=cluster.kubeconfig, name="gforward")
    assert git_through_port_forward(ctx.settings)
    stage = GitServerStage()
    server: GitServer | None = None
    port = processes.free_port()
    try:
        with cluster.forward_to(NAMESPACE, 8080, port):

            def serve_when_the_pod_runs(waiting: WaitingError) -> None:
                # The pod "runs": serve its port with the credentials the stage generated.
                nonlocal server
                if server is None and "to answer" in str(waiting):
                    secret = ctx.kube().get("v1", "Secret", CREDENTIALS_SECRET, NAMESPACE)
                    assert secret is not None
                    server = GitServer(tmp_path / "server", port=port)
                    server.credentials_file.write_bytes(
                        base64.b64decode(secret["data"]["credentials.yaml"])
                    )
                    server.start()

            created = run_until_done(stage, ctx, on_waiting=serve_when_the_pod_runs)
            assert "repository http://127.0.0.1:" in created and "created" in created
            assert ctx.state.outputs()["git_url"].startswith("http://127.0.0.1:8080/gitops.git")
            seeded = SeedStage().run(ctx)
            assert seeded.startswith("seeded http://127.0.0.1:"), seeded
            assert SeedStage().check(ctx).done
            assert stage.check(ctx).done
            assert server is not None
            assert (server.data_dir / "gitops.git").is_dir()
    finally:
        close_port_forwards()
        if server is not None:
            server.stop()
        stage.remove(ctx)
