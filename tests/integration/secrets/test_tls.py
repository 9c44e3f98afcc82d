"""`caBundle`: a real OpenBao serving HTTPS with a certificate from a throwaway CA. The
store with the CA's bundle syncs; the same store without it fails validation."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from stacks.kube.client import KubeClient
from tests.integration.secrets.conftest import Bao, Controller, Secrets
from tests.support.binaries import require_binary
from tests.support.kwok import KwokCluster
from tests.support.openbao import OpenBaoServer, initialise_and_unseal

pytestmark = pytest.mark.integration


def write_tls(directory: Path) -> Path:
    """A CA and a server certificate for 127.0.0.1; returns the CA's PEM path."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test vault CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    (directory / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (directory / "tls.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "tls.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return directory / "ca.pem"


@dataclass
class TLSOpenBao(OpenBaoServer):
    tls_dir: Path = field(default_factory=Path)

    @property
    def address(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.tls_dir / "ca.pem"))

    def _write_config(self) -> Path:
        data = self.workdir / "raft"
        data.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "config.hcl"
        config.write_text(
            f'storage "raft" {{\n  path = "{data}"\n  node_id = "tls-node"\n}}\n'
            f'listener "tcp" {{\n  address = "127.0.0.1:{self.port}"\n'
            f'  tls_cert_file = "{self.tls_dir / "tls.crt"}"\n  tls_key_file = "{self.tls_dir / "tls.key"}"\n}}\n'
            f'api_addr = "{self.address}"\ncluster_addr = "https://127.0.0.1:{self.cluster_port}"\n'
            "disable_mlock = true\nui = false\n"
        )
        return config

    def health(self) -> dict[str, Any]:
        try:
            with urllib.request.urlopen(
                f"{self.address}/v1/sys/health", timeout=2, context=self._context()
            ) as answer:
                body: dict[str, Any] = json.load(answer)
                return body
        except urllib.error.HTTPError as error:
            body = json.load(error)
            return body

    def request(self, method: str, path: str, token: str | None = None, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.address}/v1/{path}", data=data, method=method)
        if token:
            request.add_header("X-Vault-Token", token)
        with urllib.request.urlopen(request, timeout=10, context=self._context()) as answer:
            raw = answer.read()
            return json.loads(raw) if raw else None


@pytest.fixture
def tls_bao(tmp_path: Path) -> Iterator[Bao]:
    server = TLSOpenBao(
        binary=require_binary("bao"), workdir=tmp_path / "openbao-tls", tls_dir=tmp_path / "tls"
    )
    write_tls(server.tls_dir)
    server.start()
    try:
        bao = Bao(server, initialise_and_unseal(server))
        bao.call("POST", "sys/mounts/secret", {"type": "kv", "options": {"version": "2"}})
        yield bao
    finally:
        server.stop()


def test_ca_bundle(
    cluster: KwokCluster,
    crds: None,
    kube: KubeClient,
    namespace: str,
    tls_bao: Bao,
    controller: Controller,
) -> None:
    secrets = Secrets(cluster, kube, namespace, tls_bao)
    ca = (tls_bao.server.tls_dir / "ca.pem").read_bytes()  # type: ignore[attr-defined]
    tls_bao.put("app/tls", {"v": "over-https"})
    secrets.token_store("vault", caBundle=base64.b64encode(ca).decode())
    secrets.wait_ready("vault", kind="SecretStore", reason="Valid")
    secrets.external_secret(
        "tls", {"data": [{"secretKey": "v", "remoteRef": {"key": "app/tls", "property": "v"}}]}
    )
    secrets.wait_data("tls", {"v": "over-https"})

    secrets.token_store("no-ca")
    condition = secrets.wait_ready(
        "no-ca", kind="SecretStore", status="False", reason="ValidationFailed"
    )
    assert (
        "CERTIFICATE_VERIFY_FAILED" in condition["message"]
        or "certificate" in condition["message"].lower()
    )
