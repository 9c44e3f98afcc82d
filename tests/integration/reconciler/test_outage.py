"""The reconciler through a real API server outage: the control plane (etcd,
kube-apiserver, ...) is stopped with `kwokctl stop cluster` and started again.

Issue 14: after a 30 s outage the reconciler converged 29 s after the API server came
back (its per-Application backoff and its watches' retry delays kept growing while the
server was away), and it logged about 1,440 per-object warnings meanwhile.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from stacks.kube.client import KubeClient
from stacks.reconciler.server import SIGNATURE_HEADER, sign
from tests.integration.reconciler.conftest import (
    WEBHOOK_SECRET,
    Apps,
    GitRepo,
    Reconciler,
    configmap,
    wait_until,
)
from tests.support.kwok import KwokCluster

pytestmark = pytest.mark.integration

OUTAGE = 30.0  # seconds the control plane stays down, as in the issue
OBJECTS = 20


def _push_webhook(reconciler: Reconciler, after: str) -> None:
    body = json.dumps(
        {"repo": "gitops", "ref": "refs/heads/main", "before": "", "after": after}
    ).encode()
    request = urllib.request.Request(f"{reconciler.url}/webhook", data=body, method="POST")
    request.add_header(SIGNATURE_HEADER, sign(WEBHOOK_SECRET.encode(), body))
    with urllib.request.urlopen(request, timeout=5) as answer:
        assert answer.status == 202


def _answers(kube: KubeClient, namespace: str) -> bool:
    try:
        return kube.get("v1", "Namespace", namespace) is not None
    except Exception:
        return False


@contextmanager
def _control_plane_down(cluster: KwokCluster, kube: KubeClient, namespace: str) -> Iterator[None]:
    """Stop the whole control plane; start it again on leaving, even after a failure
    (later tests of the session share this cluster)."""
    cluster._kwokctl("stop", "cluster")
    try:
        wait_until(lambda: not _answers(kube, namespace), "the API server to stop", timeout=30)
        yield
    finally:
        cluster._kwokctl("start", "cluster")


def test_converges_within_seconds_after_the_api_server_returns(
    cluster: KwokCluster,
    reconciler: Reconciler,
    repo: GitRepo,
    apps: Apps,
    kube: KubeClient,
    namespace: str,
) -> None:
    names = [f"out{i}" for i in range(OBJECTS)]
    repo.write("app/cm.yaml", [configmap(n) for n in names])
    rev = repo.commit()
    apps.create("outage", "app", interval="1h")
    apps.wait_synced("outage", rev)
    log_before = len(reconciler.output().splitlines())

    with _control_plane_down(cluster, kube, namespace):
        began = time.monotonic()
        repo.write("app/cm.yaml", [configmap(n, {"k": "during the outage"}) for n in names])
        rev = repo.commit("pushed while the API server is away")
        _push_webhook(reconciler, rev)  # every sync attempt now fails and backs off
        time.sleep(max(0.0, OUTAGE - (time.monotonic() - began)))

    # "Back" is when a client first gets an answer again, as the reconciler could.
    try:
        wait_until(lambda: _answers(kube, namespace), "the API server to answer", timeout=120)
    except TimeoutError as error:
        logs = cluster.workdir / "kwok" / "clusters" / cluster.name / "logs"
        tail = (logs / "kube-apiserver.log").read_text(errors="replace")[-3000:]
        raise AssertionError(f"the control plane did not come back: {error}\n{tail}") from None
    back = time.monotonic()
    apps.wait_synced("outage", rev, timeout=60)
    converged = time.monotonic() - back
    live = kube.get("v1", "ConfigMap", names[-1], namespace)
    assert live is not None and live["data"] == {"k": "during the outage"}
    print(f"converged {converged:.2f}s after the API server came back")
    assert converged <= 5.0, f"converged {converged:.1f}s after the API server came back"

    # One line per Application per state change, not one per object and retry.
    during = reconciler.output().splitlines()[log_before:]
    warnings = [line for line in during if " WARNING " in line]
    per_object = [line for line in warnings if re.search(r"ConfigMap '[^']*/out\d+'", line)]
    assert not per_object, "\n".join(per_object[:5])
    about_app = [line for line in warnings if "Application" in line and "outage" in line]
    assert len(about_app) <= 4, "\n".join(about_app)
    assert len(warnings) <= 12, "\n".join(warnings)
