"""`platform vault status|unseal|credentials|ui` as a user runs them, against real OpenBao."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from bootstrap.stages.vault import VaultStage
from stacks.vault.keys import FILE_NAME
from tests.support.cli import PLATFORM
from tests.support.openbao import OpenBaoServer
from tests.support.stages import MakeContext

pytestmark = pytest.mark.integration


def _platform(address: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PLATFORM_NAME": "vt",
        "PLATFORM_VAULT_ADDRESS": address,
        "PLATFORM_ENGINE": "existing",
        "NO_COLOR": "1",
    }
    return subprocess.run(
        [PLATFORM, "vault", *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_status_unseal_credentials_ui(vault: OpenBaoServer, make_context: MakeContext) -> None:
    ctx = make_context(vault.address)
    VaultStage().run(ctx)
    root = json.loads((ctx.state.secrets_dir / FILE_NAME).read_text())["root_token"]
    vault.restart()

    sealed = _platform(vault.address, "status", "-o", "json")
    assert sealed.returncode == 0 and '"sealed": true' in sealed.stdout

    unsealed = _platform(vault.address, "unseal")
    assert unsealed.returncode == 0, unsealed.stderr
    assert "is unsealed" in unsealed.stdout and vault.health()["sealed"] is False

    plain = _platform(vault.address, "credentials")
    assert plain.returncode == 0 and root not in plain.stdout + plain.stderr

    shown = _platform(vault.address, "credentials", "--show-root-token")
    assert shown.returncode == 0 and f"root token: {root}" in shown.stdout
    assert "WARNING" in shown.stderr

    ui = _platform(vault.address, "ui")
    assert ui.stdout.strip() == f"{vault.address}/ui/"
