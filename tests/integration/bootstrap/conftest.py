"""Every `platform up` in these tests runs all stages for real: a real OpenBao (fresh per
test) as the platform's Vault, tofu and the offline Vault provider from testenv. The
cluster is shared by the session, so what a test's platform left in it (the vault-init
Secret of another OpenBao) is removed after each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from testenv import terraform_cli_config
from tests.support.binaries import require_binary
from tests.support.kwok import KwokCluster
from tests.support.openbao import OpenBaoServer


@pytest.fixture(autouse=True)
def _real_vault_and_tofu(
    vault: OpenBaoServer, cluster: KwokCluster, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    monkeypatch.setenv("PLATFORM_VAULT_ADDRESS", vault.address)
    monkeypatch.setenv("PLATFORM_TERRAFORM_BIN", str(require_binary("tofu")))
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", str(terraform_cli_config()))
    monkeypatch.setenv("CHECKPOINT_DISABLE", "1")
    yield
    cluster.kubectl(
        "delete", "namespace", "platform-vault", "--ignore-not-found", "--wait=true", check=False
    )
    cluster.kubectl(
        "delete",
        "clusterrolebinding",
        "platform-vault-token-reviewer",
        "--ignore-not-found",
        check=False,
    )
