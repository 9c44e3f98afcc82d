"""`platform down` takes the DNS stub's entries out of coredns-custom (stacks/dns/release.py)
against the real API server: the ConfigMap goes when the stub made it and nothing else is
in it; a cluster's own keys and lines stay, exactly."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stacks.dns import hosts
from stacks.dns.release import CREATED_BY, release
from stacks.kube.client import KubeClient
from tests.support.kwok import KwokCluster

pytestmark = pytest.mark.integration

OWNER = "platform-dns"
OURS = f"10.0.0.5 demo.e2e.test # owner={OWNER} resource=ingress/demo/demo"
THEIRS = "10.0.0.9 printer.lan"


def configmap(namespace: str, data: dict[str, str], created_by: str = "") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "coredns-custom", "namespace": namespace}
    if created_by:
        meta["annotations"] = {CREATED_BY: created_by}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}


def live(cluster: KwokCluster, namespace: str) -> dict[str, Any] | None:
    out = cluster.kubectl(
        "get", "configmap", "coredns-custom", "-n", namespace, "-o", "json", check=False
    )
    return json.loads(out) if out.strip() else None


def test_a_configmap_the_stub_created_goes_entirely(
    cluster: KwokCluster, kube: KubeClient, namespace: str
) -> None:
    data = {
        hosts.SERVER_KEY: hosts.render_server_block("e2e.test"),
        hosts.HOSTS_KEY: f"{hosts.HEADER}\n{OURS}\n",
    }
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(configmap(namespace, data, OWNER)))
    said = release(kube, namespace, "coredns-custom", OWNER)
    assert "deleted" in said
    assert live(cluster, namespace) is None
    assert release(kube, namespace, "coredns-custom", OWNER) == ""  # idempotent


def test_the_clusters_own_keys_and_lines_stay(
    cluster: KwokCluster, kube: KubeClient, namespace: str
) -> None:
    data = {
        "mine.override": "log\n",
        hosts.SERVER_KEY: hosts.render_server_block("e2e.test"),
        hosts.HOSTS_KEY: f"{hosts.HEADER}\n{THEIRS}\n{OURS}\n",
    }
    # Created by someone else (no marker): never deleted, only our part taken out.
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(configmap(namespace, data)))
    release(kube, namespace, "coredns-custom", OWNER)
    after = live(cluster, namespace)
    assert after is not None
    assert after["data"]["mine.override"] == "log\n"
    assert THEIRS in after["data"][hosts.HOSTS_KEY]
    assert OURS not in after["data"][hosts.HOSTS_KEY]


def test_a_preexisting_configmap_keeps_only_its_own_keys(
    cluster: KwokCluster, kube: KubeClient, namespace: str
) -> None:
    data = {
        "mine.server": "example.org:53 {\n    errors\n}\n",
        hosts.SERVER_KEY: hosts.render_server_block("e2e.test"),
        hosts.HOSTS_KEY: f"{hosts.HEADER}\n{OURS}\n",
    }
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(configmap(namespace, data)))
    release(kube, namespace, "coredns-custom", OWNER)
    after = live(cluster, namespace)
    assert after is not None and after["data"] == {"mine.server": data["mine.server"]}
