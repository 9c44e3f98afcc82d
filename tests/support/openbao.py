"""A real OpenBao server with raft storage for tests: init and unseal are the real thing.

Used by the `vault` and `unsealed_vault` fixtures in tests/conftest.py. The server can be
stopped and started again on the same data directory, which seals it, as a Docker
restart or laptop sleep does to the platform's Vault.
"""

from __future__ import annotations

import datetime as dt
import json
import ssl
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stacks.certs import pki
from tests.support import processes


@dataclass
class OpenBaoServer:
    binary: Path
    workdir: Path
    port: int = field(default_factory=processes.free_port)
    cluster_port: int = field(default_factory=processes.free_port)
    process: subprocess.Popen[bytes] | None = None
    # With a directory, the server speaks HTTPS with a certificate from a throwaway CA
    # (made with the project's own PKI); `ca_file` is that CA.
    tls_dir: Path | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.tls_dir else "http"

    @property
    def address(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> Path | None:
        return self.tls_dir / "ca.pem" if self.tls_dir else None

    def _ssl_context(self) -> ssl.SSLContext | None:
        return ssl.create_default_context(cafile=str(self.ca_file)) if self.ca_file else None

    def _write_tls(self) -> str:
        """listener lines for TLS (or for plain HTTP)."""
        if self.tls_dir is None:
            return "  tls_disable = true\n"
        self.tls_dir.mkdir(parents=True, exist_ok=True)
        if not (self.tls_dir / "tls.key").exists():  # a restart keeps its certificate
            self._make_certificates()
        return (
            f'  tls_cert_file = "{self.tls_dir / "tls.crt"}"\n'
            f'  tls_key_file = "{self.tls_dir / "tls.key"}"\n'
        )

    def _make_certificates(self) -> None:
        assert self.tls_dir is not None
        now = dt.datetime.now(dt.UTC)
        ca = pki.create_ca("test vault CA", now, dt.timedelta(days=1), pki.KeySpec("ECDSA"))
        leaf = pki.issue(
            pki.CertRequest(
                common_name="127.0.0.1",
                ip_addresses=("127.0.0.1",),
                duration=dt.timedelta(days=1),
                key=pki.KeySpec("ECDSA"),
            ),
            ca,
            now,
        )
        (self.tls_dir / "ca.pem").write_bytes(ca.cert_pem)
        (self.tls_dir / "tls.crt").write_bytes(leaf.cert_pem)
        (self.tls_dir / "tls.key").write_bytes(leaf.key_pem)

    @property
    def log(self) -> Path:
        return self.workdir / "bao.log"

    def _write_config(self) -> Path:
        data = self.workdir / "raft"
        data.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "config.hcl"
        config.write_text(
            f'storage "raft" {{\n  path = "{data}"\n  node_id = "test-node"\n'
            # as the shipped config (stacks/vault/manifests/20-config.yaml): fast elections
            "  performance_multiplier = 1\n}\n"
            f'listener "tcp" {{\n  address = "127.0.0.1:{self.port}"\n{self._write_tls()}}}\n'
            f'api_addr = "{self.address}"\n'
            f'cluster_addr = "{self.scheme}://127.0.0.1:{self.cluster_port}"\n'
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
            with urllib.request.urlopen(
                request, timeout=2, context=self._ssl_context()
            ) as response:
                body: dict[str, Any] = json.load(response)
                return body
        except urllib.error.HTTPError as error:
            body = json.load(error)
            return body

    def request(
        self,
        method: str,
        path: str,
        token: str | None = None,
        body: Any = None,
        timeout: float = 10,
    ) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.address}/v1/{path}", data=data, method=method)
        if token:
            request.add_header("X-Vault-Token", token)
        with urllib.request.urlopen(
            request, timeout=timeout, context=self._ssl_context()
        ) as response:
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
    # Init bootstraps the raft cluster and waits for this node to lead it: seconds when
    # idle, but a CI run once saw more than 10 s with two cores busy, and init cannot be
    # retried (the second call finds the server initialised), so it gets a long timeout.
    answer = server.request(
        "PUT",
        "sys/init",
        body={"secret_shares": shares, "secret_threshold": threshold},
        timeout=90,
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
