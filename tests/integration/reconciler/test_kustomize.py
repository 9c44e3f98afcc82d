"""Kustomize sources with the real `kustomize` and a real API server (issue 18): a base,
an overlay with a patch file, Argo CD's source.kustomize fields (image override, name
prefix, label, inline patch), pruning on change, `platform diff`, and remote bases
refused with the setting named while another Application keeps syncing."""

from __future__ import annotations

import pytest

from stacks.kube.client import KubeClient
from tests.integration.reconciler.conftest import (
    Apps,
    GitRepo,
    condition,
    configmap,
    deployment,
    wait_until,
)
from tests.integration.reconciler.tools import (  # noqa: F401 - fixtures
    create_app,
    patch_source,
    tool_env,
    tool_reconciler,
)
from tests.support.cli import run_platform
from tests.support.kwok import KwokCluster

pytestmark = pytest.mark.integration


def _write_base(repo: GitRepo, with_config: bool = True) -> None:
    resources = ["deploy.yaml", "cm.yaml"] if with_config else ["deploy.yaml", "other.yaml"]
    repo.write("kust/base/kustomization.yaml", {"resources": resources})
    repo.write("kust/base/deploy.yaml", deployment("web"))
    if with_config:
        repo.write("kust/base/cm.yaml", configmap("cfg", {"a": "1"}))
    else:
        repo.remove("kust/base/cm.yaml")
        repo.write("kust/base/other.yaml", configmap("other", {"o": "1"}))
    repo.write(
        "kust/overlays/prod/kustomization.yaml",
        {"resources": ["../../base"], "patches": [{"path": "replicas.yaml"}]},
    )
    repo.write(
        "kust/overlays/prod/replicas.yaml",
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {"replicas": 3},
        },
    )


SOURCE_FIELDS = {
    "namePrefix": "p-",
    "images": ["registry.example/app=registry.example/app:9.9"],
    "commonLabels": {"team": "blue"},
    "patches": [
        {
            "target": {"kind": "ConfigMap"},
            "patch": "- op: add\n  path: /data/patched\n  value: 'yes'\n",
        }
    ],
}


@pytest.mark.usefixtures("tool_reconciler")
def test_kustomize_overlay_synced_pruned_and_diffed(
    cluster: KwokCluster,
    repo: GitRepo,
    apps: Apps,
    kube: KubeClient,
    namespace: str,
    tool_env: dict[str, str],  # noqa: F811
) -> None:
    _write_base(repo)
    rev = repo.commit("kustomize base and overlay")
    source = {"repoURL": repo.url, "path": "kust/overlays/prod", "targetRevision": "main"}
    create_app(kube, namespace, "kust", {**source, "kustomize": SOURCE_FIELDS})
    apps.wait_synced("kust", rev, timeout=60)

    web = kube.get("apps/v1", "Deployment", "p-web", namespace)
    assert web is not None, "the overlay's name prefix was not applied"
    assert web["spec"]["replicas"] == 3  # the overlay's patch file
    assert web["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/app:9.9"
    assert web["metadata"]["labels"]["team"] == "blue"
    cfg = kube.get("v1", "ConfigMap", "p-cfg", namespace)
    assert cfg is not None and cfg["data"] == {"a": "1", "patched": "yes"}

    # A change to the Application's own fields (no commit) renders again.
    patch_source(
        kube,
        namespace,
        "kust",
        {
            "kustomize": {
                **SOURCE_FIELDS,
                "images": ["registry.example/app=registry.example/app:10.0"],
            }
        },
    )

    def image() -> str:
        live = kube.get("apps/v1", "Deployment", "p-web", namespace) or {}
        return str(live["spec"]["template"]["spec"]["containers"][0]["image"])

    wait_until(lambda: image() == "registry.example/app:10.0", "the new image override", 60)

    # A change in the base: the ConfigMap goes, another comes; the old one is pruned.
    _write_base(repo, with_config=False)
    rev2 = repo.commit("replace the config map")
    apps.annotate("kust", **{"gitops.platform.local/refresh": rev2})
    apps.wait_synced("kust", rev2, timeout=60)
    assert kube.get("v1", "ConfigMap", "p-cfg", namespace) is None
    other = kube.get("v1", "ConfigMap", "p-other", namespace)
    assert other is not None and other["data"]["patched"] == "yes"

    # `platform diff` renders the same way (shared loader): a manual Application that
    # has not synced shows what it would create, with the Application's image override.
    create_app(
        kube,
        namespace,
        "kust-manual",
        {**source, "kustomize": {**SOURCE_FIELDS, "namePrefix": "m-"}},
        automated=False,
    )
    flags = ["--kubeconfig", str(cluster.kubeconfig), "-n", namespace]
    diff = run_platform("diff", "kust-manual", *flags, env=tool_env)
    assert diff.returncode == 1, diff.stdout + diff.stderr
    assert "=== create: Deployment" in diff.stdout and "m-web" in diff.stdout
    assert "registry.example/app:9.9" in diff.stdout


@pytest.mark.usefixtures("tool_reconciler")
def test_remote_base_refused_naming_the_setting(
    repo: GitRepo,
    apps: Apps,
    kube: KubeClient,
    namespace: str,
) -> None:
    repo.write(
        "remote/kustomization.yaml",
        {
            "resources": [
                "https://github.com/kubernetes-sigs/kustomize//examples/helloWorld?ref=v5.0.0"
            ]
        },
    )
    repo.write("plain/cm.yaml", configmap("plain"))
    rev = repo.commit("a remote base")
    create_app(
        kube, namespace, "remote", {"repoURL": repo.url, "path": "remote", "targetRevision": "main"}
    )
    apps.create("plain", "plain")
    failed = apps.wait(
        "remote", lambda o: condition(o, "Ready").get("status") == "False", "Ready=False", 60
    )
    message = condition(failed, "Ready")["message"]
    assert "remote base" in message and "PLATFORM_RECONCILER_KUSTOMIZE_REMOTE_BASES" in message
    apps.wait_synced("plain", rev, timeout=60)
