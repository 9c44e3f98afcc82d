"""Every `platform up` in these tests runs all stages for real: a real OpenBao (fresh per
test) as the platform's Vault, tofu and the offline Vault provider from testenv."""

from __future__ import annotations

import pytest

from testenv import terraform_cli_config
from tests.support.binaries import require_binary
from tests.support.openbao import OpenBaoServer


@pytest.fixture(autouse=True)
def _real_vault_and_tofu(vault: OpenBaoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLATFORM_VAULT_ADDRESS", vault.address)
    monkeypatch.setenv("PLATFORM_TERRAFORM_BIN", str(require_binary("tofu")))
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", str(terraform_cli_config()))
    monkeypatch.setenv("CHECKPOINT_DISABLE", "1")
