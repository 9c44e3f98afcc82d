"""One Application of 10,000 objects against the real reconciler process and a real API
server (issue 14): it syncs, its status is written and stays far below etcd's 1.5 MiB
object limit (counts plus a compressed inventory, not one entry per object in plain
JSON), the reconciler's memory stays bounded, and pruning still finds what left git
after a restart, from the compressed inventory alone.

The objects are ConfigMaps with one short key, so the test spends its time on the
reconciler's work and not on moving bytes. How long the first sync takes against
`kubectl apply --server-side` of the same files is a benchmark
(`bench/reconciler_bench.py --only-large`), not an assertion here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stacks.kube.client import KubeClient
from stacks.reconciler.status import read_inventory
from tests.integration.reconciler.conftest import Apps, GitRepo, ready, start_reconciler
from tests.support import processes
from tests.support.kwok import KwokCluster

pytestmark = pytest.mark.integration

OBJECTS = 10_000
PER_FILE = 1_000
REMOVED = 100  # removed from git after the restart: under the mass-prune breaker's half
# The status must stay well below etcd's 1.5 MiB: a quarter of it.
STATUS_BOUND = 384 * 1024
RSS_BOUND_KB = 150_000  # 150 MB, the reconciler's memory goal


def _configmaps(start: int, stop: int) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"cm-{i:05d}"},
            "data": {"k": "v"},
        }
        for i in range(start, stop)
    ]


def _peak_rss_kb(pid: int) -> int:
    """The process's peak resident set so far (VmHWM), in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmHWM for process {pid}")


def _names(kube: KubeClient, namespace: str) -> set[str]:
    return {
        str(o["metadata"]["name"])
        for o in kube.list_objects("v1", "ConfigMap", namespace)
        if str(o["metadata"]["name"]).startswith("cm-")
    }


def test_an_application_of_10000_objects(
    cluster: KwokCluster,
    crd: None,
    kube: KubeClient,
    namespace: str,
    repo: GitRepo,
    apps: Apps,
    tmp_path: Path,
) -> None:
    for start in range(0, OBJECTS, PER_FILE):
        repo.write(f"big/cm-{start // PER_FILE:02d}.yaml", _configmaps(start, start + PER_FILE))
    revision = repo.commit("10,000 ConfigMaps")
    args = [
        f"--kubeconfig={cluster.kubeconfig}",
        f"--watch-namespace={namespace}",
        "--no-leader-elect",
    ]
    running = start_reconciler(tmp_path, args)
    try:
        apps.create("big", "big", interval="1h")
        obj = apps.wait_synced("big", revision, timeout=900)
        status = obj["status"]
        assert status["health"]["status"] == "Healthy", status["health"]
        assert status["sync"]["status"] == "Synced"
        counts = status["resourceCounts"]
        assert counts["total"] == counts["synced"] == OBJECTS, counts
        assert counts["outOfSync"] == counts["requiresPruning"] == 0, counts
        assert status["resources"] == [] and status["resourcesOmitted"] == OBJECTS
        # Every object is in the inventory, compressed; none is listed in plain JSON.
        assert "inventory" not in status
        assert status["inventoryCompressed"]["count"] == OBJECTS
        inventory = read_inventory(status)
        assert {e.ref.name for e in inventory} == {f"cm-{i:05d}" for i in range(OBJECTS)}
        size = len(json.dumps(obj, separators=(",", ":")))
        assert size < STATUS_BOUND, f"the Application is {size} bytes"
        assert len(_names(kube, namespace)) == OBJECTS
        peak = _peak_rss_kb(running.process.pid)
        # Shown with -s: what the run measured, for the bench notes.
        print(f"\n10,000 objects: Application {size} bytes, reconciler peak RSS {peak} kB")
        assert peak <= RSS_BOUND_KB, f"reconciler peak RSS {peak} kB"
    finally:
        processes.stop(running.process)

    # A restart forgets everything but the status: pruning must still know all 10,000.
    last = OBJECTS // PER_FILE - 1
    kept = OBJECTS - REMOVED
    repo.write(f"big/cm-{last:02d}.yaml", _configmaps(last * PER_FILE, kept))
    revision = repo.commit(f"remove the last {REMOVED} ConfigMaps")
    running = start_reconciler(tmp_path, args, name="restarted")
    try:
        apps.annotate("big", **{"gitops.platform.local/refresh": "after-restart"})
        obj = apps.wait(
            "big",
            lambda o: (
                (o.get("status") or {}).get("lastAppliedRevision") == revision
                and ready(o) == "True"
                and (o["status"].get("inventoryCompressed") or {}).get("count") == kept
            ),
            f"synced at {revision[:8]} with {REMOVED} objects pruned",
            timeout=600,
        )
        assert _names(kube, namespace) == {f"cm-{i:05d}" for i in range(kept)}
        assert obj["status"]["resourceCounts"]["total"] == kept
        assert len(read_inventory(obj["status"])) == kept
        peak = _peak_rss_kb(running.process.pid)
        print(f"after a restart and a prune: reconciler peak RSS {peak} kB")
        assert peak <= RSS_BOUND_KB, f"restarted reconciler peak RSS {peak} kB"
    finally:
        processes.stop(running.process)
