"""The OpenBao configuration the platform ships (stacks/vault/manifests/20-config.yaml)
is accepted by the real OpenBao server: started with it (only the container's paths and
addresses moved to this machine), it initialises, unseals and becomes active.

kwok runs no containers, so this is how the deployed server's own settings are proven.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bootstrap.stages.vault import render_manifests
from tests.support.binaries import require_binary
from tests.support.openbao import OpenBaoServer, initialise_and_unseal

pytestmark = pytest.mark.integration


def shipped_config() -> str:
    [config_map] = [
        o
        for o in render_manifests("localdev.test")
        if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "openbao-config"
    ]
    return str(config_map["data"]["config.hcl"])


class ShippedOpenBao(OpenBaoServer):
    """OpenBao started with the shipped config.hcl instead of the tests' own."""

    def _write_config(self) -> Path:
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        text = (
            shipped_config()
            .replace("/openbao/data", str(data))
            .replace("0.0.0.0:8200", f"127.0.0.1:{self.port}")
            .replace("0.0.0.0:8201", f"127.0.0.1:{self.cluster_port}")
            .replace("http://openbao-0.openbao-internal.platform-vault.svc:8200", self.address)
            .replace(
                "http://openbao-0.openbao-internal.platform-vault.svc:8201",
                f"http://127.0.0.1:{self.cluster_port}",
            )
        )
        # every container path and address moved
        assert ".svc" not in text and '"/openbao/data"' not in text, text
        config = self.workdir / "config.hcl"
        config.write_text(text)
        return config


def test_the_shipped_config_runs_a_real_openbao(tmp_path: Path) -> None:
    assert "performance_multiplier = 1" in shipped_config()
    server = ShippedOpenBao(binary=require_binary("bao"), workdir=tmp_path / "openbao")
    server.start()
    try:
        assert server.health()["initialized"] is False
        started = time.monotonic()
        initialise_and_unseal(server)
        health = server.health()
        print(f"\nshipped config: init + unseal + active in {time.monotonic() - started:.2f}s")
        assert health["initialized"] is True and health["sealed"] is False
        assert health["standby"] is False  # this node leads its raft cluster: active
    finally:
        server.stop()
