"""`caBundle`: a real OpenBao serving HTTPS with a certificate from a throwaway CA. The
store with the CA's bundle syncs; the same store without it fails validation."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest

from stacks.kube.client import KubeClient
from tests.support.binaries import require_binary
from tests.support.components import Component
from tests.support.kwok import KwokCluster
from tests.support.openbao import OpenBaoServer, initialise_and_unseal
from tests.support.secrets import Bao, Secrets

pytestmark = pytest.mark.integration


@pytest.fixture
def tls_bao(tmp_path: Path) -> Iterator[Bao]:
    server = OpenBaoServer(
        binary=require_binary("bao"), workdir=tmp_path / "openbao-tls", tls_dir=tmp_path / "tls"
    )
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
    controller: Component,
) -> None:
    secrets = Secrets(cluster, kube, namespace, tls_bao)
    assert tls_bao.server.ca_file is not None and tls_bao.server.address.startswith("https://")
    ca = tls_bao.server.ca_file.read_bytes()
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
