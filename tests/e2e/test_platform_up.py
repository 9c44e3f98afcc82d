"""`platform up` end to end: every stage, GitOps hand-off, the demo app, changes through
git, drift, a no-op re-run, and `platform down` leaving the cluster as it was found.

Real everything: kube-apiserver + etcd + kwok, the project's git server, OpenBao with
raft, OpenTofu with the Vault provider, openssl, and the in-house components as host
processes (see conftest.py).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from bootstrap.state import PlatformState
from tests.e2e.conftest import DOMAIN, HostPlatform
from tests.support.cli import json_events, run_platform
from tests.support.kwok import KwokCluster
from tests.support.processes import wait_for

pytestmark = pytest.mark.e2e


def snapshot(cluster: KwokCluster) -> dict[str, list[str]]:
    """What `platform down` must leave as it found: namespaces, CRDs, cluster RBAC."""
    result = {}
    for kind in ("namespaces", "customresourcedefinitions", "clusterroles", "clusterrolebindings"):
        items = json.loads(cluster.kubectl("get", kind, "-o", "json"))["items"]
        result[kind] = sorted(
            i["metadata"]["name"] for i in items if not i["metadata"]["name"].startswith("t-")
        )
    return result


def kubectl_json(cluster: KwokCluster, *args: str) -> dict[str, object]:
    out = cluster.kubectl(*args, "-o", "json", check=False)
    return json.loads(out) if out.strip() else {}


def secret_data(cluster: KwokCluster, namespace: str, name: str) -> dict[str, str]:
    secret = kubectl_json(cluster, "get", "secret", name, "-n", namespace)
    raw = secret.get("data") or {}
    assert isinstance(raw, dict)
    return {k: base64.b64decode(v).decode() for k, v in raw.items()}


def push_demo_change(
    host: HostPlatform, workdir: Path, message: str, edit: Callable[[dict[str, Any]], None]
) -> str:
    """Clone (or pull) the platform's repo, `edit` the demo Deployment, push; the sha."""
    if not workdir.exists():
        host.git.git("clone", "-q", host.git.repo_url("gitops"), str(workdir))
    host.git.git("pull", "-q", cwd=workdir)
    path = next(workdir.glob("apps/demo/*deployment*.yaml"))
    deployment = yaml.safe_load(path.read_text())
    edit(deployment)
    path.write_text(yaml.safe_dump(deployment, sort_keys=False))
    commit("commit", "-qam", message, host=host, cwd=workdir)
    host.git.git("push", "-q", "origin", "HEAD", cwd=workdir)
    return host.git.git("rev-parse", "HEAD", cwd=workdir).stdout.strip()


def commit(*args: str, host: HostPlatform, cwd: Path) -> None:
    """A git command that makes a commit, as the e2e's author."""
    host.git.git("-c", "user.name=e2e", "-c", "user.email=e2e@test", *args, cwd=cwd)


def scale(replicas: int) -> Callable[[dict[str, Any]], None]:
    def edit(deployment: dict[str, Any]) -> None:
        deployment["spec"]["replicas"] = replicas

    return edit


def pin_to_no_node(deployment: dict[str, Any]) -> None:
    deployment["spec"]["template"]["spec"]["nodeSelector"] = {"platform.test/never": "true"}


def demo_problem() -> str:
    """What `platform status` says about the demo Application ('' when it is ready)."""
    rows = json_events(run_platform("status", "-o", "json").stdout)[-1]["components"]
    return next((str(r["problem"]) for r in rows if r["name"] == "demo"), "")


def demo_replicas(cluster: KwokCluster) -> int:
    deployment = kubectl_json(
        cluster, "get", "deployment", "-n", "demo", "-l", "app.kubernetes.io/name=demo"
    )
    items = deployment.get("items") or []
    assert isinstance(items, list)
    return int(items[0]["spec"]["replicas"]) if items else -1


def all_apps_ready() -> bool:
    rows = json_events(run_platform("apps", "-o", "json").stdout)[-1]["applications"]
    return all(r["sync"] == "Synced" and r["health"] == "Healthy" for r in rows)


def test_platform_up_end_to_end(host_platform: HostPlatform, tmp_path: Path) -> None:
    cluster = host_platform.cluster
    before = snapshot(cluster)

    started = time.monotonic()
    up = run_platform("up", "-o", "json", timeout=900)
    took = time.monotonic() - started
    assert up.returncode == 0, (
        up.stdout[-4000:] + up.stderr[-2000:] + "\n" + host_platform.log("reconciler")[-3000:]
    )
    summary = json_events(up.stdout)[-1]
    by_stage = {s["stage"]: s["seconds"] for s in summary["stages"]}
    print(f"\ne2e platform up: {took:.1f}s; by stage: {by_stage}")
    assert set(s["outcome"] for s in summary["stages"]) == {"done"}

    # Every Application is Synced and Healthy.
    apps = run_platform("apps", "-o", "json")
    assert apps.returncode == 0, apps.stdout
    rows = json_events(apps.stdout)[-1]["applications"]
    assert {"root", "reconciler", "secrets", "certs", "dns", "demo"} <= {r["name"] for r in rows}
    assert all(r["sync"] == "Synced" and r["health"] == "Healthy" for r in rows), rows
    # `platform diff` fetches the repository on this machine with the cluster's read-only
    # login (the Applications name no Secret): in sync, nothing to change.
    diff = run_platform("diff", "demo")
    assert diff.returncode == 0, diff.stdout + diff.stderr
    assert "in sync with git" in diff.stdout

    # The reconciler manages itself: GitOps adopted the Deployment the bootstrap made
    # without a new rollout, and an image change in git rolls it out.
    reconciler = kubectl_json(
        cluster, "get", "deployment", "platform-reconciler", "-n", "platform-system"
    )
    # Revision 1: the bootstrap's ReplicaSet is still the current one (no new rollout).
    revision = reconciler["metadata"]["annotations"]["deployment.kubernetes.io/revision"]  # type: ignore[index]
    assert revision == "1", "the hand-off rolled the reconciler out again"
    work = tmp_path / "work"
    host_platform.git.git("clone", "-q", host_platform.git.repo_url("gitops"), str(work))
    manifest = next((work / "platform" / "reconciler").glob("*deployment*.yaml"))
    image = "platform-components:e2e-rollout"
    manifest.write_text(
        "\n".join(
            f"{line.split('image:')[0]}image: {image}"
            if line.strip().startswith("image:")
            else line
            for line in manifest.read_text().splitlines()
        )
        + "\n"
    )
    commit("commit", "-qam", "roll the reconciler", host=host_platform, cwd=work)
    host_platform.git.git("push", "-q", "origin", "HEAD", cwd=work)
    wait_for(
        lambda: (
            kubectl_json(
                cluster, "get", "deployment", "platform-reconciler", "-n", "platform-system"
            )["spec"]["template"]["spec"]["containers"][0]["image"]  # type: ignore[index]
            == image
        ),
        timeout=30,
        what="the reconciler's new image from git",
    )
    wait_for(
        lambda: (
            kubectl_json(
                cluster, "get", "deployment", "platform-reconciler", "-n", "platform-system"
            )["metadata"]["annotations"]["deployment.kubernetes.io/revision"]  # type: ignore[index]
            == "2"
        ),
        timeout=30,
        what="the rollout of the new image",
    )

    # The demo's credential came from Vault through an ExternalSecret.
    state = PlatformState(Path(os.environ["PLATFORM_HOME"]), "local")
    generated = json.loads(state.read_secret("terraform-vars.json") or "{}")
    expected = generated["demo_secrets"]["demo/app"]["password"]
    wait_for(
        lambda: secret_data(cluster, "demo", "demo-credentials").get("password") == expected,
        timeout=60,
        what="the demo Secret to hold Vault's value",
    )

    # Its TLS Secret verifies against the platform CA.
    wait_for(
        lambda: bool(secret_data(cluster, "demo", "demo-tls").get("tls.crt")),
        timeout=60,
        what="demo TLS",
    )
    tls = secret_data(cluster, "demo", "demo-tls")
    (tmp_path / "tls.crt").write_text(tls["tls.crt"])
    verified = subprocess.run(
        ["openssl", "verify", "-CAfile", str(state.root / "ca.crt"), str(tmp_path / "tls.crt")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr

    # Its host is in the DNS entries.
    wait_for(
        lambda: (
            f"demo.{DOMAIN}"
            in str(
                kubectl_json(
                    cluster, "get", "configmap", "coredns-custom", "-n", "kube-system"
                ).get("data")
                or {}
            )
        ),
        timeout=60,
        what="the demo host in coredns-custom",
    )

    # A commit is applied within seconds (push webhook), and `git revert` rolls it back.
    original = demo_replicas(cluster)
    pushed = time.monotonic()
    push_demo_change(host_platform, work, "scale demo", scale(original + 1))
    wait_for(
        lambda: demo_replicas(cluster) == original + 1, timeout=30, what="the pushed replica count"
    )
    print(f"push to applied: {time.monotonic() - pushed:.2f}s")
    commit("revert", "--no-edit", "HEAD", host=host_platform, cwd=work)
    host_platform.git.git("push", "-q", "origin", "HEAD", cwd=work)
    wait_for(lambda: demo_replicas(cluster) == original, timeout=30, what="the revert")

    # A change that cannot roll out: `platform status` names the cause in the cluster
    # (the real scheduler's message), not just "Progressing".
    push_demo_change(host_platform, work, "pin demo to no node", pin_to_no_node)
    wait_for(
        lambda: "cannot be scheduled" in demo_problem(),
        timeout=60,
        what="`platform status` to name the unschedulable demo pod",
    )
    problem = demo_problem()
    assert problem.startswith("Application demo is "), problem
    assert "Deployment demo/demo is Progressing" in problem
    assert "didn't match Pod's node affinity/selector" in problem
    commit("revert", "--no-edit", "HEAD", host=host_platform, cwd=work)
    host_platform.git.git("push", "-q", "origin", "HEAD", cwd=work)

    # A Deployment deleted by hand comes back.
    cluster.kubectl(
        "delete", "deployment", "-n", "demo", "-l", "app.kubernetes.io/name=demo", "--wait=false"
    )
    wait_for(
        lambda: demo_replicas(cluster) == original,
        timeout=30,
        what="the deleted Deployment to return",
    )

    # A second `platform up` changes nothing and takes seconds (once the restored
    # Deployment is Available again, or the handoff check would rightly see Progressing).
    wait_for(all_apps_ready, timeout=60, what="every Application to be Healthy again")
    started = time.monotonic()
    again = run_platform("up", "-o", "json", timeout=300)
    assert again.returncode == 0, again.stdout[-3000:]
    print(f"no-op platform up: {time.monotonic() - started:.2f}s")
    assert {s["outcome"] for s in json_events(again.stdout)[-1]["stages"]} == {"verified"}

    # `platform down` leaves the cluster as it found it. The host reconciler must stop
    # first, or it would put back what down deletes (in a cluster, down stops its pod).
    host_platform.stop_components()
    down = run_platform("down", timeout=300)
    assert down.returncode == 0, down.stdout + down.stderr
    wait_for(lambda: snapshot(cluster) == before, timeout=90, what="the cluster to be as it was")
