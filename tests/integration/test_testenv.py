"""The test environment itself: each real component starts and behaves like the real thing.

These prove the fixtures every other integration test relies on: a Deployment really
becomes Available, a CRD schema really rejects bad objects, OpenBao really seals and
unseals, git really pushes and clones.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support.kwok import KwokCluster
from tests.support.openbao import InitResult, OpenBaoServer, initialise_and_unseal, unseal
from tests.support.processes import wait_for

pytestmark = pytest.mark.integration

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: example.invalid/web:1}]
"""

CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.testenv.platform.local}
spec:
  group: testenv.platform.local
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer, minimum: 1, maximum: 10}
"""


def test_deployment_becomes_available_on_kwok_nodes(cluster: KwokCluster, namespace: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=DEPLOYMENT)

    def available() -> bool:
        status = json.loads(cluster.kubectl("get", "deploy", "web", "-n", namespace, "-o", "json"))
        return bool(status["status"].get("availableReplicas") == 2)

    wait_for(available, timeout=60, what="Deployment web to have 2 available replicas")
    pods = json.loads(cluster.kubectl("get", "pods", "-n", namespace, "-o", "json"))["items"]
    assert len(pods) == 2
    assert {p["status"]["phase"] for p in pods} == {"Running"}


def test_crd_schema_rejects_a_bad_object(cluster: KwokCluster, namespace: str) -> None:
    cluster.kubectl("apply", "-f", "-", stdin=CRD)
    wait_for(
        lambda: (
            "Established"
            in cluster.kubectl(
                "get",
                "crd",
                "widgets.testenv.platform.local",
                "-o",
                "jsonpath={.status.conditions[*].type}",
            )
        ),
        timeout=30,
        what="the Widget CRD to be established",
    )
    good = "apiVersion: testenv.platform.local/v1\nkind: Widget\nmetadata: {name: ok}\nspec: {size: 3}\n"
    bad = "apiVersion: testenv.platform.local/v1\nkind: Widget\nmetadata: {name: bad}\nspec: {size: 99}\n"
    wait_for(
        lambda: bool(cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=good)),
        timeout=30,
        what="the Widget API to serve",
    )
    with pytest.raises(RuntimeError, match=r"spec.size.*less than or equal to 10"):
        cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=bad)
    assert (
        # Fully qualified: other tests define Widget kinds in other groups.
        cluster.kubectl(
            "get",
            "widgets.testenv.platform.local",
            "ok",
            "-n",
            namespace,
            "-o",
            "jsonpath={.spec.size}",
        )
        == "3"
    )


def test_openbao_init_unseal_seal_and_kv_round_trip(vault: OpenBaoServer) -> None:
    assert vault.health()["initialized"] is False
    init: InitResult = initialise_and_unseal(vault, shares=3, threshold=2)
    assert len(init.keys) == 3
    token = init.root_token

    vault.request("POST", "sys/mounts/secret", token, {"type": "kv", "options": {"version": "2"}})
    vault.request("POST", "secret/data/demo", token, {"data": {"password": "s3cr3t"}})
    read = vault.request("GET", "secret/data/demo", token)
    assert read["data"]["data"] == {"password": "s3cr3t"}
    assert read["data"]["metadata"]["version"] == 1

    vault.request("PUT", "sys/seal", token)
    assert vault.health()["sealed"] is True
    unseal(vault, init.keys[1:3])  # any two of the three shares
    assert vault.request("GET", "secret/data/demo", token)["data"]["data"] == {"password": "s3cr3t"}

    vault.restart()  # a restart seals raft-backed OpenBao, as Docker restarts do
    assert vault.health()["sealed"] is True
    unseal(vault, init.keys[:2])
    assert vault.request("GET", "secret/data/demo", token)["data"]["data"]["password"] == "s3cr3t"


def _git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def test_git_push_and_clone(bare_repo: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    _git("clone", "-q", str(bare_repo), str(work))
    (work / "README.md").write_text("hello\n")
    _git(
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@e",
        "commit",
        "-qam",
        "first",
        "--allow-empty",
        cwd=work,
    )
    _git("add", "README.md", cwd=work)
    _git("-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "add readme", cwd=work)
    _git("push", "-q", "origin", "HEAD:main", cwd=work)

    copy = tmp_path / "copy"
    _git("clone", "-q", str(bare_repo), str(copy))
    assert (copy / "README.md").read_text() == "hello\n"
    assert _git("rev-parse", "HEAD", cwd=copy) == _git("rev-parse", "HEAD", cwd=work)
