"""`platform apps`, `platform sync APP`, `platform diff APP` against a running reconciler."""

from __future__ import annotations

import pytest

from stacks.kube.client import KubeClient
from tests.integration.reconciler.conftest import Apps, GitRepo, Reconciler, configmap
from tests.support.cli import json_events, run_platform
from tests.support.kwok import KwokCluster

pytestmark = pytest.mark.integration


def test_apps_sync_and_diff(
    cluster: KwokCluster,
    reconciler: Reconciler,
    repo: GitRepo,
    apps: Apps,
    kube: KubeClient,
    namespace: str,
) -> None:
    repo.write("app/cm.yaml", [configmap("one"), configmap("two")])
    rev = repo.commit()
    apps.create("manual", "app", automated=False)
    flags = ["--kubeconfig", str(cluster.kubeconfig), "-n", namespace]

    listed = run_platform("apps", *flags)
    assert listed.returncode == 0, listed.stderr
    assert "manual" in listed.stdout and "NAME" in listed.stdout

    changed = run_platform("diff", "manual", *flags)
    assert changed.returncode == 1, changed.stderr
    assert "=== create: ConfigMap" in changed.stdout and "+  k: one" in changed.stdout

    synced = run_platform("sync", "manual", *flags, "--timeout", "60")
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert "Synced and Healthy" in synced.stdout and rev[:12] in synced.stdout
    assert kube.get("v1", "ConfigMap", "two", namespace) is not None

    clean = run_platform("diff", "manual", *flags)
    assert clean.returncode == 0 and "in sync with git" in clean.stdout

    as_json = run_platform("apps", *flags, "-o", "json")
    summary = next(e for e in json_events(as_json.stdout) if e["event"] == "summary")
    assert summary["applications"][0]["sync"] == "Synced"

    missing = run_platform("sync", "nope", *flags)
    assert missing.returncode == 1 and "no Application" in (missing.stdout + missing.stderr)
