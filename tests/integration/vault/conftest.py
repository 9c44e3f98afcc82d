"""Fixtures for the Vault tests: stage contexts against the real OpenBao (and the real
kube-apiserver when a test asks for `cluster`), with debug logging captured to a file."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bootstrap.config import load_settings
from bootstrap.engines.existing import ExistingEngine
from bootstrap.stages.base import StageContext
from bootstrap.state import PlatformState
from stacks.errors import PermanentError
from testenv import locate
from testenv.provide import terraform_plugin_dir
from tests.support.binaries import require_binary


@dataclass
class RecordingProgress:
    lines: list[str] = field(default_factory=list)

    def step(self, stage: str, message: str) -> None:
        self.lines.append(f"step {stage}: {message}")

    def note(self, stage: str, message: str) -> None:
        self.lines.append(f"note {stage}: {message}")

    def warn(self, stage: str, message: str) -> None:
        self.lines.append(f"warn {stage}: {message}")


class NoCluster:
    name = "none"

    def client(self) -> object:
        raise PermanentError("no cluster in this test")


@pytest.fixture
def debug_log(tmp_path: Path) -> Iterator[Path]:
    """Root logger at DEBUG into a file *without* the redacting filter the CLI installs:
    the leak test checks the first line of defence (nothing logs a secret at all)."""
    path = tmp_path / "debug.log"
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield path
    root.removeHandler(handler)
    root.setLevel(old_level)
    handler.close()


MakeContext = Callable[..., StageContext]


@pytest.fixture
def make_context(tmp_path: Path, debug_log: Path) -> MakeContext:
    def make(
        address: str, kubeconfig: Path | None = None, name: str = "vt", **env: str
    ) -> StageContext:
        environ = {
            "PLATFORM_HOME": os.environ["PLATFORM_HOME"],
            "PLATFORM_NAME": name,
            "PLATFORM_ENGINE": "existing",
            "PLATFORM_VAULT_ADDRESS": address,
            **env,
        }
        if kubeconfig is not None:
            environ["PLATFORM_KUBECONFIG"] = str(kubeconfig)
        settings = load_settings(environ=environ)
        state = PlatformState(settings.home, settings.name)
        state.ensure()
        engine = ExistingEngine(settings, state) if kubeconfig is not None else NoCluster()
        return StageContext(
            settings=settings,
            state=state,
            progress=RecordingProgress(),
            engine=engine,  # type: ignore[arg-type]
            log=logging.getLogger("platform.test"),
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
