"""Port-forwards to the platform's own services, kept for the life of this process.

On a cluster whose ingress this machine cannot reach (`--engine existing`), the bootstrap
reaches the services it deployed, Vault and the git server, through the Kubernetes API:
`forwarded_address` opens (once per service) a `stacks.kube.portforward.PortForwarder`
on 127.0.0.1 and returns its address. The forwards serve the stages, the subprocesses
they start (tofu, git) and `platform vault|git ...` while the command runs, and close at
exit.

Called by bootstrap/vault_access.py and bootstrap/gitops/repo.py.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from bootstrap.config import Settings

if TYPE_CHECKING:
    from stacks.kube.client import KubeClient
    from stacks.kube.portforward import PortForwarder

_forwarders: dict[tuple[str, str, str, int], PortForwarder] = {}
_lock = threading.Lock()

ACCESS_CHOICES = ("auto", "ingress", "port-forward")


def uses_port_forward(access: str, engine: str) -> bool:
    """`access` is a setting of ACCESS_CHOICES; auto means ingress with k3d (it maps the
    ingress to this machine's ports) and a port-forward on any other cluster."""
    if access == "auto":
        return engine != "k3d"
    return access == "port-forward"


def git_through_port_forward(settings: Settings) -> bool:
    """True when this machine reaches the platform's own git server through the Kubernetes
    API (`git.access`; auto: on clusters other than k3d's)."""
    return not settings.git.url and uses_port_forward(settings.git.access, settings.engine)


def vault_through_port_forward(settings: Settings) -> bool:
    """True when this machine reaches the platform's own OpenBao (no `vault.address`)
    through the Kubernetes API (`vault.access`)."""
    return not settings.vault.address and uses_port_forward(settings.vault.access, settings.engine)


def needs_port_forward(settings: Settings) -> bool:
    """Will this platform reach its own Vault or git server through a port-forward? (Then
    the kubeconfig's identity needs `create pods/portforward`.)"""
    return git_through_port_forward(settings) or vault_through_port_forward(settings)


def forwarded_address(
    kube: Callable[[], KubeClient], namespace: str, service: str, port: int
) -> str:
    """`127.0.0.1:<port>` forwarding to `namespace/service:port`, opened on first use."""
    from stacks.kube.portforward import PortForwarder

    client = kube()
    key = (client.host, namespace, service, port)
    with _lock:
        forwarder = _forwarders.get(key)
        if forwarder is None:
            forwarder = PortForwarder(client, namespace, service, port)
            try:
                forwarder.check_access()
            except Exception:
                forwarder.close()
                raise
            _forwarders[key] = forwarder
        return forwarder.address


def forward_problem(namespace: str, service: str, port: int) -> str:
    """Why the open forward to that service last failed to tunnel ("" if it did not)."""
    with _lock:
        for (_, ns, name, number), forwarder in _forwarders.items():
            if (ns, name, number) == (namespace, service, port) and forwarder.last_error:
                return forwarder.last_error
    return ""


def close_port_forwards() -> None:
    with _lock:
        for forwarder in _forwarders.values():
            forwarder.close()
        _forwarders.clear()


atexit.register(close_port_forwards)
