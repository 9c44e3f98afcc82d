"""The secrets controller's Vault adapter says whether Vault is sealed or not initialised
(the fixes differ: unseal, or initialise), against the real OpenBao in both states."""

from __future__ import annotations

import pytest

from stacks.secrets.api import SecretKeyRef, TokenAuth, VaultStore
from stacks.secrets.vault_provider import VaultProvider, VaultUnavailable
from tests.support.openbao import OpenBaoServer, initialise_and_unseal

pytestmark = pytest.mark.integration


def _provider(server: OpenBaoServer) -> VaultProvider:
    store = VaultStore(
        server=server.address,
        path="secret",
        version="v2",
        namespace=None,
        ca_bundle=None,
        auth=TokenAuth(SecretKeyRef(name="t", key="token", namespace="ns")),
    )
    return VaultProvider(store, static_token="not-a-real-token")


def test_not_initialised_then_sealed_are_told_apart(vault: OpenBaoServer) -> None:
    provider = _provider(vault)
    with pytest.raises(VaultUnavailable) as fresh:
        provider.read("demo/app")
    assert str(fresh.value) == f"Vault at {vault.address} is not initialised"

    initialise_and_unseal(vault)
    vault.restart()  # raft storage: it comes back sealed
    with pytest.raises(VaultUnavailable) as sealed:
        provider.read("demo/app")
    assert str(sealed.value) == f"Vault at {vault.address} is sealed"
    provider.close()
