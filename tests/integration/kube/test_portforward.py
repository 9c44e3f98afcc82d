"""PortForwarder against the real API server: each local connection is tunnelled through
`pods/portforward` to the pod behind a Service. kwok plays the kubelet; its
ClusterPortForward sends the pod's port to a real HTTP server on this machine."""

from __future__ import annotations

import hashlib
import http.server
import threading
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from stacks.errors import PermanentError, TransientError
from stacks.kube.client import KubeClient
from stacks.kube.portforward import PortForwarder
from tests.support.kwok import KwokCluster
from tests.support.processes import wait_for

pytestmark = pytest.mark.integration

BIG = bytes(range(256)) * 4096  # 1 MiB


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = BIG if self.path == "/big" else f"hello from {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _service_and_pod(kube: KubeClient, namespace: str) -> None:
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": namespace},
            "spec": {
                "selector": {"app": "web"},
                "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
            },
        }
    )
    # A Pod needs its namespace's default ServiceAccount, which a controller creates.
    wait_for(
        lambda: kube.get("v1", "ServiceAccount", "default", namespace) is not None,
        timeout=30,
        what="the namespace's default ServiceAccount",
    )
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web-0", "namespace": namespace, "labels": {"app": "web"}},
            "spec": {
                "containers": [
                    {
                        "name": "web",
                        "image": "web",
                        "ports": [{"name": "http", "containerPort": 8080}],
                    }
                ],
                "tolerations": [{"key": "kwok.x-k8s.io/node", "operator": "Exists"}],
            },
        }
    )

    def running() -> bool:
        pod = kube.get("v1", "Pod", "web-0", namespace) or {}
        return (pod.get("status") or {}).get("phase") == "Running"

    wait_for(running, timeout=30, what="pod web-0 Running")


def _get(forwarder: PortForwarder, path: str) -> bytes:
    with urllib.request.urlopen(f"http://{forwarder.address}{path}", timeout=20) as answer:
        body: bytes = answer.read()
        return body


def test_forwards_connections_to_the_pod_behind_a_service(
    cluster: KwokCluster, kube: KubeClient, namespace: str, http_server: int
) -> None:
    _service_and_pod(kube, namespace)
    # The Service's named targetPort resolves to the pod's containerPort 8080.
    with (
        cluster.forward_to(namespace, 8080, http_server),
        PortForwarder(kube, namespace, "web", 80) as forwarder,
    ):
        assert forwarder.resolve() == ("web-0", 8080)
        # kwok picks the ClusterPortForward up a moment after it is created (a real
        # kubelet needs no such thing): until then its tunnels close at once.
        wait_for(
            lambda: _get(forwarder, "/one") == b"hello from /one",
            timeout=30,
            what=f"a first tunnel through kwok's forward (last error: {forwarder.last_error})",
        )
        assert _get(forwarder, "/two") == b"hello from /two"  # a second tunnel
        big = _get(forwarder, "/big")
        assert hashlib.sha256(big).digest() == hashlib.sha256(BIG).digest()
        with ThreadPoolExecutor(4) as pool:  # concurrent connections, one tunnel each
            answers = list(pool.map(lambda i: _get(forwarder, f"/c{i}"), range(8)))
        assert answers == [f"hello from /c{i}".encode() for i in range(8)]


def test_no_running_pod_or_no_service_is_said_plainly(kube: KubeClient, namespace: str) -> None:
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "empty", "namespace": namespace},
            "spec": {"selector": {"app": "nothing"}, "ports": [{"port": 80}]},
        }
    )
    with PortForwarder(kube, namespace, "empty", 80) as forwarder:
        with pytest.raises(TransientError, match="no Running pod behind Service"):
            forwarder.resolve()
        # A connection made anyway is closed, not left hanging, and the forwarder can
        # say why (what the stages add to their "waiting for ..." messages).
        with pytest.raises(OSError):
            _get(forwarder, "/")
        assert "no Running pod behind Service" in forwarder.last_error
    with (
        PortForwarder(kube, namespace, "missing", 80) as forwarder,
        pytest.raises(PermanentError, match="does not exist"),
    ):
        forwarder.resolve()


def test_an_identity_without_the_right_is_told_before_any_connection(
    kube: KubeClient, namespace: str
) -> None:
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "no-forward", "namespace": namespace},
        }
    )
    token = kube.token_request(namespace, "no-forward", expiration_seconds=600)
    restricted = KubeClient.from_token(kube.host, token, kube.server_ca_file())
    try:
        with (
            PortForwarder(restricted, namespace, "web", 80) as forwarder,
            pytest.raises(PermanentError, match=r"may not port-forward.*pods/portforward"),
        ):
            forwarder.check_access()
    finally:
        restricted.close()
    with PortForwarder(kube, namespace, "web", 80) as forwarder:
        forwarder.check_access()  # the admin may
