"""A local TCP port that forwards to a Service's pod through the Kubernetes API.

`kubectl port-forward` in-process: `PortForwarder` listens on 127.0.0.1 (port chosen by
the OS), and for each connection it accepts opens one tunnel to the pod's port through
the API server (`KubeClient.open_port_forward`) and copies bytes both ways. The pod is
picked per connection among the Running pods behind the Service (Ready ones first), so
a restarted pod is found again without restarting the forwarder.

Used by the bootstrap to reach the platform's own Vault on clusters whose ingress is not
reachable from this machine (bootstrap/vault_access.py). Nothing here logs or
inspects the bytes it copies: they may carry tokens.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading
from typing import Any, Protocol

from stacks.errors import PermanentError, TransientError
from stacks.kube.client import PodStream
from stacks.kube.objects import KubeObject, ObjectReader, condition_of

log = logging.getLogger(__name__)

CHUNK = 65536


class PortForwardClient(ObjectReader, Protocol):
    def open_port_forward(self, namespace: str, pod: str, port: int) -> PodStream: ...

    def self_subject_access(
        self,
        verb: str,
        group: str,
        resource: str,
        namespace: str | None = None,
        subresource: str = "",
    ) -> bool: ...


def _selector(service: KubeObject) -> str:
    labels = (service.get("spec") or {}).get("selector") or {}
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


def _target_port(service: KubeObject, pod: KubeObject, port: int) -> int:
    """The pod's port behind Service port `port`: the targetPort, a name looked up among
    the pod's container ports, or `port` itself when none is given."""
    for entry in (service.get("spec") or {}).get("ports") or []:
        if entry.get("port") != port:
            continue
        target = entry.get("targetPort", port)
        if isinstance(target, int):
            return target
        for container in (pod.get("spec") or {}).get("containers") or []:
            for declared in container.get("ports") or []:
                if declared.get("name") == target:
                    return int(declared["containerPort"])
        raise PermanentError(
            f"Service port {port} targets the port named {target!r}, which pod "
            f"'{pod['metadata']['name']}' does not declare"
        )
    return port


def pick_pod(pods: list[KubeObject]) -> KubeObject | None:
    """A Running pod that is not being deleted, Ready ones first; None when there is none."""
    running = [
        p
        for p in pods
        if (p.get("status") or {}).get("phase") == "Running"
        and not (p.get("metadata") or {}).get("deletionTimestamp")
    ]
    running.sort(key=lambda p: (condition_of(p, "Ready") or {}).get("status") != "True")
    return running[0] if running else None


class PortForwarder:
    """Serve `namespace/service:port` on 127.0.0.1:<local_port> until close()."""

    def __init__(self, client: PortForwardClient, namespace: str, service: str, port: int) -> None:
        self._client = client
        self.namespace = namespace
        self.service = service
        self.port = port
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.local_port: int = self._listener.getsockname()[1]
        self._closed = threading.Event()
        # Why the latest connection could not be tunnelled ("" once one succeeds), so a
        # caller that only sees a closed connection can say why.
        self.last_error = ""
        self._thread = threading.Thread(
            target=self._accept, name=f"port-forward-{service}", daemon=True
        )
        self._thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.local_port}"

    def check_access(self) -> None:
        """Raise a PermanentError that says so when this identity may not port-forward in
        the namespace (otherwise every connection would just be closed)."""
        if not self._client.self_subject_access(
            "create", "", "pods", self.namespace, subresource="portforward"
        ):
            raise PermanentError(
                f"the kubeconfig's identity may not port-forward to pods in "
                f"'{self.namespace}' (create pods/portforward)",
                hint="use a context with that right, or reach the service another way: "
                "vault.access / git.access = ingress, or an external vault.address / git.url",
            )

    def resolve(self) -> tuple[str, int]:
        """The pod and container port to tunnel to now."""
        service = self._client.get("v1", "Service", self.service, self.namespace)
        if service is None:
            raise PermanentError(
                f"Service '{self.namespace}/{self.service}' does not exist",
                hint="it is deployed by `platform up`; run it again",
            )
        pods = self._client.list_objects("v1", "Pod", self.namespace, _selector(service))
        pod = pick_pod(pods)
        if pod is None:
            raise TransientError(
                f"no Running pod behind Service '{self.namespace}/{self.service}' yet"
            )
        return str(pod["metadata"]["name"]), _target_port(service, pod, self.port)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return  # the listener was closed
            threading.Thread(
                target=self._serve, args=(connection,), name="port-forward-conn", daemon=True
            ).start()

    def _serve(self, connection: socket.socket) -> None:
        stream: PodStream | None = None
        try:
            pod, port = self.resolve()
            stream = self._client.open_port_forward(self.namespace, pod, port)
            self.last_error = ""
            _pump(connection, stream.socket, self._closed)
        except Exception as error:  # a failed tunnel closes this connection only
            self.last_error = str(error)
            log.info("port-forward to %s/%s failed: %s", self.namespace, self.service, error)
        finally:
            with contextlib.suppress(OSError):
                connection.close()
            if stream is not None:
                stream.close()

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._thread.join(timeout=5)

    def __enter__(self) -> PortForwarder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _pump(local: socket.socket, remote: Any, closed: threading.Event) -> None:
    """Copy bytes both ways until either side ends (or the forwarder closes)."""
    while not closed.is_set():
        readable, _, _ = select.select([local, remote], [], [], 0.5)
        for source in readable:
            data = source.recv(CHUNK)
            if not data:
                return
            (remote if source is local else local).sendall(data)
