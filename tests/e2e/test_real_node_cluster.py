"""The real-node test cluster itself (tests/support/realnode/): what the platform's e2e
relies on, checked on its own so a broken node is told apart from a broken platform.

A pod runs a real process, reaches the API server over TLS with its ServiceAccount, and
resolves Service names through CoreDNS; a claim gets a volume from local-path; Traefik
routes an Ingress from this machine; `coredns-custom` entries are served.
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator

import pytest

from tests.support.processes import wait_for
from tests.support.realnode import inspect
from tests.support.realnode.cluster import (
    BUSYBOX_IMAGE,
    DNS_IP,
    INGRESS_IP,
    RealNodeCluster,
    resolve,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def ns(real_node: RealNodeCluster) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    real_node.kubectl("create", "namespace", name)
    yield name
    # Gone before the next test looks at the cluster (the platform's e2e compares every
    # object before and after `platform up`).
    real_node.kubectl("delete", "namespace", name, "--wait=true", "--timeout=120s", check=False)


def test_the_node_is_ready_and_runs_the_k3s_addons(real_node: RealNodeCluster) -> None:
    node = json.loads(real_node.kubectl("get", "node", "realnode", "-o", "json"))
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")
    for namespace, selector in (
        ("kube-system", "k8s-app=kube-dns"),
        ("kube-system", "app.kubernetes.io/name=traefik"),
        ("local-path-storage", "app=local-path-provisioner"),
    ):
        pods = inspect.pods(real_node.kubectl, namespace, selector)
        assert pods and all(inspect.running_and_ready(p) for p in pods), (namespace, selector)
    classes = json.loads(real_node.kubectl("get", "storageclass", "-o", "json"))["items"]
    default = [
        c["metadata"]["name"]
        for c in classes
        if c["metadata"].get("annotations", {}).get("storageclass.kubernetes.io/is-default-class")
        == "true"
    ]
    assert default == ["local-path"]
    assert resolve(DNS_IP, "kube-dns.kube-system.svc.cluster.local") == [DNS_IP]


def test_a_pod_runs_resolves_names_and_gets_a_volume(real_node: RealNodeCluster, ns: str) -> None:
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data", "namespace": ns},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Mi"}}},
    }
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "writer", "namespace": ns},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "writer",
                    "image": BUSYBOX_IMAGE,
                    "imagePullPolicy": "Never",
                    "command": [
                        "sh",
                        "-c",
                        "nslookup kubernetes.default.svc.cluster.local && "
                        "echo written > /data/file && cat /data/file",
                    ],
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                }
            ],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
        },
    }
    real_node.kubectl(
        "apply",
        "-f",
        "-",
        stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": [claim, pod]}),
    )
    wait_for(
        lambda: (
            real_node.kubectl("get", "pod", "writer", "-n", ns, "-o", "jsonpath={.status.phase}")
            == "Succeeded"
        ),
        timeout=120,
        what="the writer pod to finish",
        interval=0.5,
    )
    log = real_node.kubectl("logs", "writer", "-n", ns)
    assert "written" in log and "10.96.0.1" in log, log
    bound = real_node.kubectl("get", "pvc", "data", "-n", ns, "-o", "jsonpath={.status.phase}")
    assert bound == "Bound"


def test_traefik_routes_an_ingress_from_this_machine(real_node: RealNodeCluster, ns: str) -> None:
    host = f"web.{ns}.test"
    objects = [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web", "namespace": ns, "labels": {"app": "web"}},
            "spec": {
                "containers": [
                    {
                        "name": "web",
                        "image": BUSYBOX_IMAGE,
                        "imagePullPolicy": "Never",
                        "command": [
                            "sh",
                            "-c",
                            "echo hello-from-pod > /tmp/index.html && httpd -f -p 8080 -h /tmp",
                        ],
                    }
                ]
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": ns},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": "web", "namespace": ns},
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
                ]
            },
        },
    ]
    real_node.kubectl(
        "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})
    )

    def answers() -> bool:
        with socket.create_connection((INGRESS_IP, 80), timeout=3) as conn:
            conn.sendall(
                f"GET /index.html HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
            )
            response = b""
            while chunk := conn.recv(65536):
                response += chunk
        return b"hello-from-pod" in response

    wait_for(answers, timeout=90, what="Traefik to route the Ingress", interval=1)
    status = json.loads(real_node.kubectl("get", "ingress", "web", "-n", ns, "-o", "json"))[
        "status"
    ]
    assert status["loadBalancer"]["ingress"] == [{"ip": INGRESS_IP}]


def test_coredns_serves_the_coredns_custom_server_blocks(real_node: RealNodeCluster) -> None:
    """k3s's Corefile imports coredns-custom's *.server keys; the platform's DNS stub
    relies on it. A server block added there is served without restarting CoreDNS."""
    domain = f"custom-{uuid.uuid4().hex[:6]}.test"
    hosts = f"10.1.2.3 probe.{domain}\n"
    server = f"{domain}:53 {{\n    hosts /etc/coredns/custom/probe.hosts\n}}\n"
    custom = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "coredns-custom", "namespace": "kube-system"},
        "data": {"probe.server": server, "probe.hosts": hosts},
    }
    real_node.kubectl("apply", "-f", "-", stdin=json.dumps(custom))
    try:
        wait_for(
            lambda: resolve(DNS_IP, f"probe.{domain}") == ["10.1.2.3"],
            timeout=120,
            what="CoreDNS to serve the coredns-custom server block",
            interval=1,
        )
    finally:
        real_node.kubectl("delete", "configmap", "coredns-custom", "-n", "kube-system", check=False)
