"""How the bootstrap reaches Vault: the one place that turns settings into an address.

Three ways, chosen by settings:

    external       `vault.address` is set (an existing Vault, and most e2e tests): used as is
    ingress        the platform's own OpenBao through its Ingress `vault.<domain>` on the
                   host's HTTP port, which the k3d engine maps to the cluster's ingress
    port-forward   the platform's own OpenBao through the Kubernetes API: a local port
                   that tunnels to the pod behind Service platform-vault/openbao
                   (bootstrap/forwards.py), for clusters whose ingress this machine
                   cannot reach

`vault.access` picks between the last two (auto: ingress with k3d, port-forward with an
existing cluster). A port-forward lives as long as this process: the stages and the
terraform subprocess use it while `platform up` runs, and it closes at exit.

Called by the `vault` and `terraform` stages and by `platform vault ...`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from bootstrap.config import Settings
from bootstrap.forwards import forward_problem, forwarded_address, vault_through_port_forward
from stacks.vault.keys import NAMESPACE

if TYPE_CHECKING:
    from stacks.kube.client import KubeClient

SERVICE = "openbao"
PORT = 8200


def deploys_vault(settings: Settings) -> bool:
    """True when the platform installs its own OpenBao (no `vault.address` given)."""
    return not settings.vault.address


def access_mode(settings: Settings) -> str:
    """'external', 'ingress' or 'port-forward' (see the module docstring)."""
    if not deploys_vault(settings):
        return "external"
    return "port-forward" if vault_through_port_forward(settings) else "ingress"


def vault_address(settings: Settings, kube: Callable[[], KubeClient]) -> str:
    """Vault's address from this machine; opens the port-forward on first use."""
    mode = access_mode(settings)
    if mode == "external":
        return settings.vault.address.rstrip("/")
    if mode == "port-forward":
        return f"http://{forwarded_address(kube, NAMESPACE, SERVICE, PORT)}"
    port = settings.k3d.http_port
    suffix = "" if port == 80 else f":{port}"
    return f"http://vault.{settings.domain}{suffix}"


def people_vault_address(settings: Settings, address: str) -> str:
    """How a person reaches Vault after `platform up` has exited: `address`, or, through
    a port-forward (whose local port dies with the bootstrap), the command that opens one
    and the address then."""
    if access_mode(settings) != "port-forward":
        return address
    return (
        f"http://127.0.0.1:{PORT} while `kubectl -n {NAMESPACE} port-forward "
        f"svc/{SERVICE} {PORT}:{PORT}` runs"
    )


def access_problem(settings: Settings) -> str:
    """What the port-forward to Vault last reported (for wait and error messages)."""
    if access_mode(settings) != "port-forward":
        return ""
    problem = forward_problem(NAMESPACE, SERVICE, PORT)
    return f" (port-forward: {problem})" if problem else ""


def in_cluster_address() -> str:
    """Vault's address as pods see it (for Kubernetes auth and the unsealer)."""
    return f"http://{SERVICE}.{NAMESPACE}.svc:{PORT}"
