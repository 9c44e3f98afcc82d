"""The certs controller against a real API server, as a real process; chains are checked
with the real `openssl verify`."""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives.serialization import Encoding

from stacks.certs import pki
from stacks.kube.client import KubeClient
from tests.support import processes
from tests.support.components import Component
from tests.support.kwok import KwokCluster

pytestmark = pytest.mark.integration

API = "certs.platform.local/v1"


def apply(cluster: KwokCluster, *objects: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(objects))


def make_ca_secret(kube: KubeClient, namespace: str, name: str) -> pki.KeyPair:
    ca = pki.create_ca("platform test CA", dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/tls",
            "metadata": {"name": name, "namespace": namespace},
            "data": {
                "tls.crt": base64.b64encode(ca.cert_pem).decode(),
                "tls.key": base64.b64encode(ca.key_pem).decode(),
            },
        }
    )
    return ca


def certificate(
    namespace: str, name: str, issuer: str, kind: str = "Issuer", **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "Certificate",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"secretName": f"{name}-tls", "issuerRef": {"name": issuer, "kind": kind}, **spec},
    }


def wait_ready(kube: KubeClient, namespace: str, name: str, timeout: float = 60) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def ready() -> bool:
        obj = kube.get(API, "Certificate", name, namespace) or {}
        for cond in (obj.get("status") or {}).get("conditions") or []:
            if cond["type"] == "Ready" and cond["status"] == "True":
                found.update(obj)
                return True
        return False

    processes.wait_for(ready, timeout, f"Certificate {namespace}/{name} to be Ready")
    return found


def secret_files(kube: KubeClient, namespace: str, name: str, where: Path) -> dict[str, Path]:
    secret = kube.get("v1", "Secret", name, namespace)
    assert secret is not None
    assert secret["type"] == "kubernetes.io/tls"
    assert not secret["metadata"].get("ownerReferences")
    where.mkdir(parents=True, exist_ok=True)
    files = {}
    for key in ("tls.crt", "tls.key", "ca.crt"):
        path = where / key
        path.write_bytes(base64.b64decode(secret["data"][key]))
        files[key] = path
    return files


def openssl_verify(files: dict[str, Path], where: Path) -> None:
    bundle = pki.load_certs(files["tls.crt"].read_bytes())
    leaf = where / "leaf.pem"
    leaf.write_bytes(pki.first_pem(files["tls.crt"].read_bytes()))
    untrusted = where / "untrusted.pem"
    untrusted.write_bytes(b"".join(pki.first_pem(c.public_bytes(Encoding.PEM)) for c in bundle[1:]))
    cmd = ["openssl", "verify", "-CAfile", str(files["ca.crt"])]
    if len(bundle) > 1:
        cmd += ["-untrusted", str(untrusted)]
    result = subprocess.run([*cmd, str(leaf)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert ": OK" in result.stdout


def test_ca_issuer_certificate_passes_openssl_verify(
    cluster: KwokCluster,
    kube: KubeClient,
    namespace: str,
    certs_controller: Component,
    tmp_path: Path,
) -> None:
    make_ca_secret(kube, namespace, "root-ca")
    apply(
        cluster,
        {
            "apiVersion": API,
            "kind": "Issuer",
            "metadata": {"name": "ca", "namespace": namespace},
            "spec": {"ca": {"secretName": "root-ca"}},
        },
        certificate(
            namespace,
            "web",
            "ca",
            commonName="web.example.test",
            dnsNames=["web.example.test", "www.example.test"],
            ipAddresses=["10.0.0.7"],
            privateKey={"algorithm": "ECDSA", "size": 384},
            usages=["digital signature", "server auth"],
        ),
    )
    cert = wait_ready(kube, namespace, "web")
    status = cert["status"]
    assert status["revision"] == 1
    assert {"notBefore", "notAfter", "renewalTime"} <= set(status)
    files = secret_files(kube, namespace, "web-tls", tmp_path / "web")
    openssl_verify(files, tmp_path / "web")
    info = pki.inspect(files["tls.crt"].read_bytes())
    assert sorted(info.dns_names) == ["web.example.test", "www.example.test"]
    assert info.ip_addresses == ("10.0.0.7",)
    assert (info.key_algorithm, info.key_size) == ("ECDSA", 384)
    assert pki.key_matches(files["tls.crt"].read_bytes(), files["tls.key"].read_bytes())
    text = subprocess.run(
        ["openssl", "x509", "-noout", "-text", "-in", str(files["tls.crt"])],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "DNS:web.example.test" in text and "IP Address:10.0.0.7" in text
    assert "TLS Web Server Authentication" in text
    secret = kube.get("v1", "Secret", "web-tls", namespace) or {}
    annotations = secret["metadata"]["annotations"]
    assert annotations["certs.platform.local/certificate-name"] == "web"
    assert annotations["certs.platform.local/issuer-name"] == "ca"
    assert annotations["certs.platform.local/issuer-kind"] == "Issuer"
    assert annotations["certs.platform.local/alt-names"] == "web.example.test,www.example.test"
    # the Issuer itself reports a verified key pair
    issuer = kube.get(API, "Issuer", "ca", namespace) or {}
    assert issuer["status"]["conditions"][0]["reason"] == "KeyPairVerified"
    # no private key in status or events
    key_text = files["tls.key"].read_text().splitlines()[1]
    events = cluster.kubectl("get", "events", "-n", namespace, "-o", "json")
    assert key_text not in json.dumps(status) and key_text not in events
    # deleting the Certificate leaves the Secret
    kube.delete(API, "Certificate", "web", namespace)
    time.sleep(1)
    assert kube.get("v1", "Secret", "web-tls", namespace) is not None


def test_self_signed_cluster_issuer_and_rsa_key(
    cluster: KwokCluster,
    kube: KubeClient,
    namespace: str,
    certs_controller: Component,
    tmp_path: Path,
) -> None:
    issuer = f"self-{namespace}"
    apply(
        cluster,
        {
            "apiVersion": API,
            "kind": "ClusterIssuer",
            "metadata": {"name": issuer},
            "spec": {"selfSigned": {}},
        },
        certificate(
            namespace,
            "selfy",
            issuer,
            kind="ClusterIssuer",
            dnsNames=["selfy.test"],
            privateKey={"algorithm": "RSA", "size": 4096},
        ),
    )
    try:
        wait_ready(kube, namespace, "selfy")
        files = secret_files(kube, namespace, "selfy-tls", tmp_path / "selfy")
        openssl_verify(files, tmp_path / "selfy")
        info = pki.inspect(files["tls.crt"].read_bytes())
        assert (info.key_algorithm, info.key_size) == ("RSA", 4096)
        assert info.dns_names == ("selfy.test",)
        assert files["ca.crt"].read_bytes() == files["tls.crt"].read_bytes()
    finally:
        kube.delete(API, "ClusterIssuer", issuer)


def test_cluster_issuer_ca_from_cluster_resource_namespace(
    cluster: KwokCluster,
    kube: KubeClient,
    namespace: str,
    certs_controller: Component,
    tmp_path: Path,
) -> None:
    make_ca_secret(kube, namespace, "platform-ca")
    issuer = f"ca-{namespace}"
    apply(
        cluster,
        {
            "apiVersion": API,
            "kind": "ClusterIssuer",
            "metadata": {"name": issuer},
            "spec": {"ca": {"secretName": "platform-ca"}},
        },
        certificate(namespace, "app", issuer, kind="ClusterIssuer", dnsNames=["app.test"]),
    )
    try:
        wait_ready(kube, namespace, "app")
        files = secret_files(kube, namespace, "app-tls", tmp_path / "app")
        openssl_verify(files, tmp_path / "app")
        assert len(pki.load_certs(files["tls.crt"].read_bytes())) == 2  # leaf + CA
    finally:
        kube.delete(API, "ClusterIssuer", issuer)


def _issuer_ready(kube: KubeClient, name: str) -> bool:
    obj = kube.get(API, "ClusterIssuer", name) or {}
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def test_cluster_issuer_created_before_its_ca_is_ready_as_soon_as_the_ca_secret_exists(
    cluster: KwokCluster, kube: KubeClient, namespace: str, certs_controller: Component
) -> None:
    """`platform up` creates the CA after the ClusterIssuer arrives from git: the
    controller watches CA Secrets, so the issuer does not wait for its 10 s retry."""
    issuer = f"late-ca-{namespace}"
    apply(
        cluster,
        {
            "apiVersion": API,
            "kind": "ClusterIssuer",
            "metadata": {"name": issuer},
            "spec": {"ca": {"secretName": "late-ca"}},
        },
    )
    try:

        def waiting_for_the_ca() -> bool:
            obj = kube.get(API, "ClusterIssuer", issuer) or {}
            conditions = (obj.get("status") or {}).get("conditions") or []
            return any(c["type"] == "Ready" and c["status"] == "False" for c in conditions)

        processes.wait_for(waiting_for_the_ca, 30, "the ClusterIssuer to report its missing CA")
        make_ca_secret(kube, namespace, "late-ca")
        created = time.monotonic()
        processes.wait_for(lambda: _issuer_ready(kube, issuer), 30, "the ClusterIssuer Ready")
        assert time.monotonic() - created < 5.0  # the retry alone would take up to 10 s
    finally:
        kube.delete(API, "ClusterIssuer", issuer)


def _observe(
    kube: KubeClient, namespace: str, names: list[str], seconds: float
) -> dict[str, list[tuple[int, str]]]:
    seen: dict[str, list[tuple[int, str]]] = {n: [] for n in names}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for name in names:
            status = (kube.get(API, "Certificate", name, namespace) or {}).get("status") or {}
            entry = (int(status.get("revision") or 0), str(status.get("notBefore", "")))
            if entry[0] and (not seen[name] or seen[name][-1] != entry):
                seen[name].append(entry)
        time.sleep(0.25)
    return seen


def test_short_certificate_renews_on_time_and_once_per_period(
    cluster: KwokCluster, kube: KubeClient, namespace: str, certs_controller: Component
) -> None:
    apply(
        cluster,
        {
            "apiVersion": API,
            "kind": "Issuer",
            "metadata": {"name": "self", "namespace": namespace},
            "spec": {"selfSigned": {}},
        },
        # lifetime 1h, renew 8s after issuance
        certificate(
            namespace,
            "short",
            "self",
            dnsNames=["short.test"],
            duration="1h",
            renewBefore="59m52s",
            privateKey={"algorithm": "ECDSA"},
        ),
        # renewBefore longer than the lifetime: falls back to lifetime/3, no renewal loop
        certificate(
            namespace,
            "loop",
            "self",
            dnsNames=["loop.test"],
            duration="1h",
            renewBefore="2h",
            privateKey={"algorithm": "ECDSA"},
        ),
    )
    short = wait_ready(kube, namespace, "short")
    loop = wait_ready(kube, namespace, "loop")
    not_after = dt.datetime.fromisoformat(short["status"]["notAfter"].replace("Z", "+00:00"))
    renewal = dt.datetime.fromisoformat(short["status"]["renewalTime"].replace("Z", "+00:00"))
    assert (not_after - renewal) == dt.timedelta(minutes=59, seconds=52)
    loop_after = dt.datetime.fromisoformat(loop["status"]["notAfter"].replace("Z", "+00:00"))
    loop_renewal = dt.datetime.fromisoformat(loop["status"]["renewalTime"].replace("Z", "+00:00"))
    assert (loop_after - loop_renewal) == dt.timedelta(minutes=20)

    seen = _observe(kube, namespace, ["short", "loop"], 26)
    revisions = [r for r, _ in seen["short"]]
    # ~8 s period over 26 s: 3 renewals (+/- one for timing), one revision each, in order
    assert revisions == sorted(set(revisions)), seen
    renewals = revisions[-1] - short["status"]["revision"]
    assert 2 <= renewals <= 4, seen
    starts = [dt.datetime.fromisoformat(nb.replace("Z", "+00:00")) for _, nb in seen["short"]]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(starts)]
    assert all(6 <= gap <= 12 for gap in gaps), (gaps, seen)
    assert [r for r, _ in seen["loop"]] == [1], seen


def test_annotated_ingress_gets_tls_secret_that_outlives_it(
    cluster: KwokCluster,
    kube: KubeClient,
    namespace: str,
    certs_controller: Component,
    tmp_path: Path,
) -> None:
    make_ca_secret(kube, namespace, "platform-ca")
    issuer = f"ing-{namespace}"
    apply(
        cluster,
        {
            "apiVersion": API,
            "kind": "ClusterIssuer",
            "metadata": {"name": issuer},
            "spec": {"ca": {"secretName": "platform-ca"}},
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {
                "name": "demo",
                "namespace": namespace,
                "annotations": {"certs.platform.local/cluster-issuer": issuer},
            },
            "spec": {
                "tls": [
                    {"hosts": ["demo.platform.test", "api.platform.test"], "secretName": "demo-tls"}
                ],
                "rules": [
                    {
                        "host": "demo.platform.test",
                        "http": {
                            "paths": [
                                {
                                    "path": "/",
                                    "pathType": "Prefix",
                                    "backend": {
                                        "service": {"name": "demo", "port": {"number": 80}}
                                    },
                                }
                            ]
                        },
                    }
                ],
            },
        },
    )
    try:
        processes.wait_for(
            lambda: kube.get("v1", "Secret", "demo-tls", namespace) is not None,
            60,
            "the ingress TLS Secret",
        )
        cert = wait_ready(kube, namespace, "demo-tls")
        assert cert["metadata"]["ownerReferences"][0]["kind"] == "Ingress"
        assert sorted(cert["spec"]["dnsNames"]) == ["api.platform.test", "demo.platform.test"]
        files = secret_files(kube, namespace, "demo-tls", tmp_path / "demo")
        openssl_verify(files, tmp_path / "demo")
        cluster.kubectl("delete", "ingress", "demo", "-n", namespace)
        processes.wait_for(
            lambda: kube.get(API, "Certificate", "demo-tls", namespace) is None,
            60,
            "the garbage collector to delete the Ingress's Certificate",
        )
        time.sleep(1)
        assert kube.get("v1", "Secret", "demo-tls", namespace) is not None
    finally:
        kube.delete(API, "ClusterIssuer", issuer)
