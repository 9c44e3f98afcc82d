"""Fixtures for the Vault tests: stage contexts against the real OpenBao (and the real
kube-apiserver when a test asks for `cluster`), with debug logging captured to a file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bootstrap.stages.base import StageContext
from testenv import locate
from testenv.provide import terraform_plugin_dir
from tests.support.binaries import require_binary
from tests.support.stages import MakeContext, stage_context
from tests.support.stages import debug_log as capture_debug_log


@pytest.fixture
def debug_log(tmp_path: Path) -> Iterator[Path]:
    with capture_debug_log(tmp_path / "debug.log") as path:
        yield path


@pytest.fixture
def make_context(tmp_path: Path, debug_log: Path) -> MakeContext:
    def make(
        address: str, kubeconfig: Path | None = None, name: str = "vt", **env: str
    ) -> StageContext:
        return stage_context(
            {"PLATFORM_NAME": name, "PLATFORM_VAULT_ADDRESS": address, **env}, kubeconfig
        )

    return make


@pytest.fixture
def tofu_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """tofu from testenv on PATH-free terms, and the offline provider mirror."""
    tofu = require_binary("tofu")
    mirror = terraform_plugin_dir()
    if not any(mirror.glob("*/hashicorp/vault/*")):
        pytest.fail(f"no Vault provider in {mirror}: run `make testenv`", pytrace=False)
    # testenv's own file (terraform_cli_config()) uses "*/hashicorp/vault", which tofu
    # 1.6 rejects (a wildcard host needs wildcard namespace and type): name both hosts.
    config = tmp_path / "tofurc"
    config.write_text(
        "provider_installation {\n"
        f'  filesystem_mirror {{\n    path = "{mirror}"\n'
        '    include = ["registry.terraform.io/hashicorp/vault", '
        '"registry.opentofu.org/hashicorp/vault"]\n  }\n'
        "}\n"
    )
    monkeypatch.setenv("PLATFORM_TERRAFORM_BIN", str(tofu))
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", str(config))
    monkeypatch.setenv("CHECKPOINT_DISABLE", "1")
    assert locate("tofu") is not None
    return tofu
