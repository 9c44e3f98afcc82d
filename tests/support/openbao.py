"""A real OpenBao server with raft storage for tests: init and unseal are the real thing.

Used by the `vault` and `unsealed_vault` fixtures in tests/conftest.py. The server can be
stopped and started again on the same data directory, which seals it, as a Docker
restart or laptop sleep does to the platform's Vault.
"""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support import processes


@dataclass
class OpenBaoServer:
    binary: Path
    workdir: Path
    port: int = field(default_factory=processes.free_port)
    cluster_port: int = field(default_factory=processes.free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.workdir / "bao.log"

    def _write_config(self) -> Path:
        data = self.workdir / "raft"
        data.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "config.hcl"
        config.write_text(
            f'storage "raft" {{\n  path = "{data}"\n  node_id = "test-node"\n}}\n'
            f'listener "tcp" {{\n  address = "127.0.0.1:{self.port}"\n  tls_disable = true\n}}\n'
            f'api_addr = "{self.address}"\n'
            f'cluster_addr = "http://127.0.0.1:{self.cluster_port}"\n'
            "disable_mlock = true\n"
            "ui = false\n"
        )
        return config

    def start(self) -> None:
        config = self._write_config()
        self.process = processes.start(
            [self.binary, "server", f"-config={config}"], self.log, env={"BAO_LOG_LEVEL": "info"}
        )
        processes.wait_for(self._answers, timeout=30, what=f"OpenBao at {self.address}")

    def stop(self) -> None:
        if self.process is not None:
            processes.stop(self.process)
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def _answers(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"OpenBao exited; see {self.log}")
        self.health()
        return True

    def health(self) -> dict[str, Any]:
        # sys/health answers with non-2xx codes for sealed/uninitialised; the body is the same.
        request = urllib.request.Request(f"{self.address}/v1/sys/health")
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                body: dict[str, Any] = json.load(response)
                return body
        except urllib.error.HTTPError as error:
            body = json.load(error)
            return body

    def request(self, method: str, path: str, token: str | None = None, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.address}/v1/{path}", data=data, method=method)
        if token:
            request.add_header("X-Vault-Token", token)
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            return json.loads(raw) if raw else None

    def version(self) -> str:
        return str(self.health().get("version", "unknown"))


@dataclass(frozen=True)
class InitResult:
    root_token: str
    keys: tuple[str, ...]


def initialise_and_unseal(server: OpenBaoServer, shares: int = 3, threshold: int = 2) -> InitResult:
    """Initialise through the HTTP API and unseal with `threshold` keys (fixture use only)."""
    answer = server.request(
        "PUT", "sys/init", body={"secret_shares": shares, "secret_threshold": threshold}
    )
    result = InitResult(root_token=answer["root_token"], keys=tuple(answer["keys"]))
    unseal(server, result.keys[:threshold])
    return result


def unseal(server: OpenBaoServer, keys: tuple[str, ...]) -> None:
    for key in keys:
        server.request("PUT", "sys/unseal", body={"key": key})
    processes.wait_for(
        lambda: server.health().get("sealed") is False and server.health().get("standby") is False,
        timeout=30,
        what="OpenBao to become active after unseal",
    )
