"""How the bootstrap reaches Vault: the one place that turns settings into an address.

Three ways, chosen by settings:

    external       `vault.address` is set (an existing Vault, and most e2e tests): used as is
    ingress        the platform's own OpenBao through its Ingress `vault.<domain>` on the
                   host's HTTP port, which the k3d engine maps to the cluster's ingress
    port-forward   the platform's own OpenBao through the Kubernetes API: a local port
                   that tunnels to the pod behind Service platform-vault/openbao
                   (stacks/kube/portforward.py), for clusters whose ingress this machine
                   cannot reach

`vault.access` picks between the last two (auto: ingress with k3d, port-forward with an
existing cluster). A port-forward lives as long as this process: the stages and the
terraform subprocess use it while `platform up` runs, and it closes at exit.

Called by the `vault` and `terraform` stages and by `platform vault ...`.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable

from bootstrap.config import Settings
from stacks.kube.client import KubeClient
from stacks.kube.portforward import PortForwarder
from stacks.vault.keys import NAMESPACE

SERVICE = "openbao"
PORT = 8200

_forwarders: dict[tuple[str, str], PortForwarder] = {}
_lock = threading.Lock()


def deploys_vault(settings: Settings) -> bool:
    """True when the platform installs its own OpenBao (no `vault.address` given)."""
    return not settings.vault.address


def access_mode(settings: Settings) -> str:
    """'external', 'ingress' or 'port-forward' (see the module docstring)."""
    if not deploys_vault(settings):
        return "external"
    if settings.vault.access != "auto":
        return settings.vault.access
    return "ingress" if settings.engine == "k3d" else "port-forward"


def vault_address(settings: Settings, kube: Callable[[], KubeClient]) -> str:
    """Vault's address from this machine; opens the port-forward on first use."""
    mode = access_mode(settings)
    if mode == "external":
        return settings.vault.address.rstrip("/")
    if mode == "port-forward":
        return f"http://{_forwarder(settings, kube).address}"
    port = settings.k3d.http_port
    suffix = "" if port == 80 else f":{port}"
    return f"http://vault.{settings.domain}{suffix}"


def _forwarder(settings: Settings, kube: Callable[[], KubeClient]) -> PortForwarder:
    client = kube()
    key = (settings.name, client.host)
    with _lock:
        forwarder = _forwarders.get(key)
        if forwarder is None:
            forwarder = PortForwarder(client, NAMESPACE, SERVICE, PORT)
            try:
                forwarder.check_access()
            except Exception:
                forwarder.close()
                raise
            _forwarders[key] = forwarder
        return forwarder


def close_port_forwards() -> None:
    with _lock:
        for forwarder in _forwarders.values():
            forwarder.close()
        _forwarders.clear()


atexit.register(close_port_forwards)


def in_cluster_address() -> str:
    """Vault's address as pods see it (for Kubernetes auth and the unsealer)."""
    return f"http://{SERVICE}.{NAMESPACE}.svc:{PORT}"
