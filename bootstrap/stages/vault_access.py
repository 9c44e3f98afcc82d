"""How the bootstrap reaches Vault: the one place that turns settings into an address.

With `vault.address` set (an existing Vault, and the e2e tests) that address is used as
is. Otherwise the platform's own OpenBao is reached through its Ingress `vault.<domain>`
on the host's HTTP port, which the k3d engine maps to the cluster's ingress controller.
A Kubernetes port-forward for engines without host ingress (`--engine existing` with no
ingress reachable from this machine) would slot in here; it is not built yet.

Called by the `vault` and `terraform` stages and by `platform vault ...`.
"""

from __future__ import annotations

from bootstrap.config import Settings


def deploys_vault(settings: Settings) -> bool:
    """True when the platform installs its own OpenBao (no `vault.address` given)."""
    return not settings.vault.address


def vault_address(settings: Settings) -> str:
    if settings.vault.address:
        return settings.vault.address.rstrip("/")
    port = settings.k3d.http_port
    suffix = "" if port == 80 else f":{port}"
    return f"http://vault.{settings.domain}{suffix}"


def in_cluster_address() -> str:
    """Vault's address as pods see it (for Kubernetes auth and the unsealer)."""
    return "http://openbao.platform-vault.svc:8200"
