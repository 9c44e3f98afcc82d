"""The DNS stub against a real API server as a real process, answered by a real CoreDNS."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from stacks.dns.hosts import HOSTS_KEY, SERVER_KEY
from stacks.kube.client import KubeClient
from tests.support.components import Component
from tests.support.coredns import CoreDNS, wait_until
from tests.support.kwok import KwokCluster
from tests.support.manifests import cluster_role_for

pytestmark = pytest.mark.integration

FOREIGN_LINE = "192.0.2.10 legacy.example.test # added by hand"


def ingress(
    namespace: str, name: str, hosts: list[str], annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations or {}},
        "spec": {
            "rules": [
                {
                    "host": host,
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {"service": {"name": "web", "port": {"number": 80}}},
                            }
                        ]
                    },
                }
                for host in hosts
            ]
        },
    }


def apply(cluster: KwokCluster, *objects: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(objects))


def configmap(kube: KubeClient, namespace: str) -> dict[str, str]:
    obj = kube.get("v1", "ConfigMap", "coredns-custom", namespace) or {}
    return dict(obj.get("data") or {})


def seed_configmap(kube: KubeClient, namespace: str) -> None:
    """Keys and lines that belong to someone else, present before the stub starts."""
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "coredns-custom", "namespace": namespace},
            "data": {
                "other.server": "other.test:53 {\n    errors\n}\n",
                "log.override": "log\n",
                HOSTS_KEY: FOREIGN_LINE + "\n",
            },
        }
    )


def hosts_has(kube: KubeClient, namespace: str, line_start: str) -> Callable[[], bool]:
    return lambda: any(
        line.startswith(line_start)
        for line in configmap(kube, namespace).get(HOSTS_KEY, "").splitlines()
    )


def test_ingress_create_change_delete_updates_only_owned_entries(
    cluster: KwokCluster,
    kube: KubeClient,
    namespace: str,
    domain: str,
    start_dns: Callable[..., object],
) -> None:
    seed_configmap(kube, namespace)
    start_dns()
    apply(cluster, ingress(namespace, "web", [f"web.{domain}", "outside.example.org"]))
    wait_until(
        hosts_has(kube, namespace, f"10.43.0.80 web.{domain} "), 30, "the ingress host entry"
    )
    data = configmap(kube, namespace)
    assert data["other.server"] == "other.test:53 {\n    errors\n}\n"
    assert data["log.override"] == "log\n"
    assert FOREIGN_LINE in data[HOSTS_KEY].splitlines()
    assert "outside.example.org" not in data[HOSTS_KEY]  # not in the platform's domain
    assert f"resource=ingress/{namespace}/web" in data[HOSTS_KEY]
    assert data[SERVER_KEY].startswith(f"{domain}:53 {{")

    # changed: new host, new target (annotation), old entry gone
    apply(
        cluster,
        ingress(
            namespace, "web", [f"www.{domain}"], {"external-dns.kubernetes.io/target": "10.9.8.7"}
        ),
    )
    wait_until(hosts_has(kube, namespace, f"10.9.8.7 www.{domain} "), 30, "the changed entry")
    wait_until(
        lambda: f"web.{domain}" not in configmap(kube, namespace)[HOSTS_KEY],
        30,
        "the old entry to go",
    )

    # an annotated Service and a DNSRecord are sources too
    apply(
        cluster,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": "db",
                "namespace": namespace,
                "annotations": {"external-dns.kubernetes.io/hostname": f"db.{domain}, pg.{domain}"},
            },
            "spec": {"ports": [{"port": 5432}], "externalIPs": ["10.1.1.1"]},
        },
        {
            "apiVersion": "dns.platform.local/v1alpha1",
            "kind": "DNSRecord",
            "metadata": {"name": "api", "namespace": namespace},
            "spec": {"dnsName": f"api.{domain}", "targets": ["10.2.2.2", "10.2.2.3"], "ttl": 60},
        },
    )
    for line in (
        f"10.1.1.1 db.{domain} ",
        f"10.1.1.1 pg.{domain} ",
        f"10.2.2.2 api.{domain} ",
        f"10.2.2.3 api.{domain} ",
    ):
        wait_until(hosts_has(kube, namespace, line), 30, line)

    # deleted: its entries go, everything else stays
    cluster.kubectl("delete", "ingress", "web", "-n", namespace)
    wait_until(
        lambda: f"www.{domain}" not in configmap(kube, namespace)[HOSTS_KEY],
        30,
        "the deleted ingress's entry to go",
    )
    data = configmap(kube, namespace)
    assert FOREIGN_LINE in data[HOSTS_KEY].splitlines()
    assert data["other.server"] and data["log.override"]
    assert f"api.{domain}" in data[HOSTS_KEY]

    # a foreign line added later survives the next sync
    hosts_text = data[HOSTS_KEY] + "192.0.2.11 later.example.test\n"
    kube.merge_patch(
        "v1", "ConfigMap", "coredns-custom", {"data": {HOSTS_KEY: hosts_text}}, namespace
    )
    cluster.kubectl("delete", "dnsrecord", "api", "-n", namespace)
    wait_until(
        lambda: f"api.{domain}" not in configmap(kube, namespace)[HOSTS_KEY],
        30,
        "the DNSRecord's entries to go",
    )
    final = configmap(kube, namespace)[HOSTS_KEY].splitlines()
    assert FOREIGN_LINE in final and "192.0.2.11 later.example.test" in final


def _rbac(namespace: str, with_ingresses: bool) -> list[dict[str, Any]]:
    sources = [
        {"apiGroups": [""], "resources": ["services"], "verbs": ["get", "list", "watch"]},
        {
            "apiGroups": ["dns.platform.local"],
            "resources": ["dnsrecords"],
            "verbs": ["get", "list", "watch"],
        },
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
    ]
    if with_ingresses:
        sources.append(
            {
                "apiGroups": ["networking.k8s.io"],
                "resources": ["ingresses"],
                "verbs": ["get", "list", "watch"],
            }
        )
    subject = [{"kind": "ServiceAccount", "name": "dns", "namespace": namespace}]
    return [
        *cluster_role_for(f"dns-test-{namespace}", sources, namespace, "dns"),
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "dns", "namespace": namespace},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["configmaps"],
                    "verbs": ["list", "watch", "create"],
                },
                {
                    "apiGroups": [""],
                    "resources": ["configmaps"],
                    "resourceNames": ["coredns-custom"],
                    "verbs": ["get", "update", "patch"],
                },
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "dns", "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "dns"},
            "subjects": subject,
        },
    ]


def test_failed_listing_keeps_the_hosts_file(
    cluster: KwokCluster,
    kube: KubeClient,
    namespace: str,
    domain: str,
    start_dns: Callable[..., Component],
    tmp_path: Path,
) -> None:
    """With least-privilege RBAC like the manifests'; then `list ingresses` is revoked and
    the stub restarted, so its Ingress cache cannot list (a watch already open would
    outlive the revocation): its syncs must write nothing until the right is back."""
    seed_configmap(kube, namespace)
    apply(cluster, *_rbac(namespace, with_ingresses=True))
    kubeconfig = cluster.service_account_kubeconfig(namespace, "dns", tmp_path / "dns.kubeconfig")
    try:
        first = start_dns(kubeconfig)
        apply(cluster, ingress(namespace, "keep", [f"keep.{domain}"]))
        wait_until(hosts_has(kube, namespace, f"10.43.0.80 keep.{domain} "), 30, "the entry")
        before = configmap(kube, namespace)[HOSTS_KEY]
        first.stop()

        apply(cluster, *_rbac(namespace, with_ingresses=False))  # revoke list/watch ingresses
        cluster.kubectl("delete", "ingress", "keep", "-n", namespace)
        second = start_dns(kubeconfig, ready=False)  # its Ingress cache cannot list
        # poke a sync through the ConfigMap watch, which is still allowed
        kube.merge_patch(
            "v1", "ConfigMap", "coredns-custom", {"data": {"poke.override": "# poke\n"}}, namespace
        )
        # A sync happened (and refused); only then is "unchanged" a finding.
        wait_until(lambda: "failed to list DNS sources" in second.output(), 30, "a failed listing")
        assert configmap(kube, namespace)[HOSTS_KEY] == before  # not emptied, not touched

        apply(cluster, *_rbac(namespace, with_ingresses=True))  # restored: the deletion lands
        wait_until(
            lambda: f"keep.{domain}" not in configmap(kube, namespace)[HOSTS_KEY],
            90,
            "the entry to go after recovery",
        )
        assert FOREIGN_LINE in configmap(kube, namespace)[HOSTS_KEY]
    finally:
        cluster.kubectl(
            "delete", "clusterrole,clusterrolebinding", f"dns-test-{namespace}", check=False
        )


def test_real_coredns_answers_from_the_generated_files(
    cluster: KwokCluster,
    kube: KubeClient,
    namespace: str,
    domain: str,
    start_dns: Callable[..., object],
    coredns: CoreDNS,
) -> None:
    seed_configmap(kube, namespace)
    start_dns()
    apply(
        cluster,
        ingress(namespace, "shop", [f"shop.{domain}"]),
        {
            **ingress(namespace, "lb", [f"lb.{domain}"]),
            "status": {},
        },
    )
    # an Ingress with published load-balancer status uses that address
    cluster.kubectl(
        "patch",
        "ingress",
        "lb",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status":{"loadBalancer":{"ingress":[{"ip":"172.18.0.5"}]}}}',
    )
    wait_until(hosts_has(kube, namespace, f"10.43.0.80 shop.{domain} "), 30, "shop entry")
    wait_until(hosts_has(kube, namespace, f"172.18.0.5 lb.{domain} "), 30, "lb entry")
    data = configmap(kube, namespace)
    coredns.write({SERVER_KEY: data[SERVER_KEY], HOSTS_KEY: data[HOSTS_KEY]})
    coredns.start()
    assert coredns.query(f"shop.{domain}") == ("NOERROR", ["10.43.0.80"])
    assert coredns.query(f"lb.{domain}") == ("NOERROR", ["172.18.0.5"])

    # a change reaches CoreDNS through the hosts file alone (the plugin re-reads it)
    apply(
        cluster,
        ingress(
            namespace, "new", [f"new.{domain}"], {"external-dns.kubernetes.io/target": "10.7.7.7"}
        ),
    )
    wait_until(hosts_has(kube, namespace, f"10.7.7.7 new.{domain} "), 30, "new entry")
    coredns.write({HOSTS_KEY: configmap(kube, namespace)[HOSTS_KEY]})
    wait_until(
        lambda: coredns.query(f"new.{domain}") == ("NOERROR", ["10.7.7.7"]),
        20,
        "CoreDNS to reload the hosts file",
    )
    # a name in the zone but without an entry falls through to forward (no network: not NOERROR with our IP)
    rcode, answers = coredns.query(f"missing.{domain}")
    assert answers == [] or rcode != "NOERROR", (rcode, answers)
