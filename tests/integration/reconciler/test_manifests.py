"""The shipped manifests install (through stacks.reconciler.install, as the bootstrap
stage does) and the CRD's schema refuses invalid Applications."""

from __future__ import annotations

import uuid

import pytest

from stacks.kube.client import KubeClient
from stacks.kube.errors import Invalid
from stacks.reconciler import install
from stacks.reconciler.api import API_VERSION, KIND

pytestmark = pytest.mark.integration


def test_install_applies_every_manifest_and_becomes_ready(kube: KubeClient, crd: None) -> None:
    line = install.git_credentials_line("http://git.example:8080", "cluster", "p@ss word")
    assert line == "http://cluster:p%40ss%20word@git.example:8080\n"
    applied = install.install(
        kube, "registry.example/platform:test", webhook_secret="s", git_credentials=line
    )
    kinds = {(r.kind, r.name) for r in applied}
    assert ("CustomResourceDefinition", "applications.gitops.platform.local") in kinds
    assert ("Deployment", "platform-reconciler") in kinds and (
        "Service",
        "platform-reconciler",
    ) in kinds
    assert ("Secret", install.WEBHOOK_SECRET) in kinds and ("Secret", install.GIT_SECRET) in kinds
    deployment = kube.get("apps/v1", "Deployment", "platform-reconciler", "platform-system")
    assert deployment is not None
    assert (
        deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        == "registry.example/platform:test"
    )
    install.wait_ready(kube, timeout=120)  # kwok plays the kubelet
    # idempotent
    install.install(kube, "registry.example/platform:test")


def test_root_application_is_valid_and_bad_ones_are_refused(
    kube: KubeClient, crd: None, namespace: str
) -> None:
    root = install.root_application(
        "root", "http://git.example/gitops.git", "registry/local", namespace=namespace, cascade=True
    )
    created = kube.apply(root, "platform-bootstrap")
    assert created["spec"]["source"]["targetRevision"] == "HEAD"
    assert created["spec"]["interval"] == "3m"
    assert created["metadata"]["finalizers"] == ["resources-finalizer.gitops.platform.local"]

    def bad(spec: dict[str, object]) -> None:
        obj = {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"name": f"bad-{uuid.uuid4().hex[:6]}", "namespace": namespace},
            "spec": spec,
        }
        with pytest.raises(Invalid):
            kube.create(obj)

    bad({"source": {"path": "x"}})  # no repoURL
    bad({"source": {"repoURL": "file:///r"}, "interval": "3 minutes"})
    bad({"source": {"repoURL": "file:///r"}, "syncPolicy": {"syncOptions": ["bogus"]}})
    bad({"source": {"repoURL": "file:///r"}, "dependsOn": [{"namespace": "x"}]})
