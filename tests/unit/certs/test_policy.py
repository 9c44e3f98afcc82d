"""Unit tests for the certs controller's pure decisions (stacks.certs.policy)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from stacks.certs import pki
from stacks.certs import policy as p
from stacks.errors import PermanentError

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def cert_obj(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": p.API_VERSION,
        "kind": "Certificate",
        "metadata": {"name": "web", "namespace": "ns"},
        "spec": {
            "secretName": "web-tls",
            "issuerRef": {"name": "ca", "kind": "ClusterIssuer"},
            "dnsNames": ["web.test"],
            **spec,
        },
    }


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1h", 3600), ("59m50s", 3590), ("2160h", 2160 * 3600), ("1.5h", 5400), ("500ms", 0.5)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert p.parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "1d", "h", "10", "1h junk"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(PermanentError):
        p.parse_duration(text)


def test_spec_defaults_and_validation() -> None:
    spec = p.certificate_spec(cert_obj())
    assert spec.request.duration == dt.timedelta(days=90)
    assert spec.request.key == pki.KeySpec("RSA", 2048)
    assert spec.issuer == p.IssuerRef("ca", "ClusterIssuer")
    assert spec.renew_before is None
    with pytest.raises(PermanentError):
        p.certificate_spec(cert_obj(issuerRef={"name": "x", "kind": "Vault"}))
    with pytest.raises(PermanentError):
        p.certificate_spec(cert_obj(secretName=""))


def _secret(spec: p.CertificateSpec, now: dt.datetime) -> dict[str, Any]:
    pair = pki.self_signed(spec.request, now)
    return p.tls_secret(cert_obj(), spec, pair, b"", pair.cert_pem)


@pytest.fixture(scope="module")
def spec() -> p.CertificateSpec:
    return p.certificate_spec(
        cert_obj(duration="1h", renewBefore="10m", privateKey={"algorithm": "ECDSA"})
    )


def test_judge_walks_the_policies(spec: p.CertificateSpec) -> None:
    assert p.judge(None, spec, NOW).reason == "DoesNotExist"
    secret = _secret(spec, NOW)
    good = p.judge(secret, spec, NOW + dt.timedelta(minutes=1))
    assert good.ok and good.reason == "Ready"
    assert good.renewal == NOW + dt.timedelta(minutes=50)
    assert p.judge(secret, spec, NOW + dt.timedelta(minutes=50)).reason == "Renewing"
    assert p.judge(secret, spec, NOW + dt.timedelta(hours=2)).reason == "Expired"
    missing = {**secret, "data": {"tls.crt": secret["data"]["tls.crt"]}}
    assert p.judge(missing, spec, NOW).reason == "MissingData"
    other = pki.self_signed(spec.request, NOW)
    mismatched = {
        **secret,
        "data": {
            **secret["data"],
            "tls.key": p.tls_secret(cert_obj(), spec, other, b"", b"")["data"]["tls.key"],
        },
    }
    assert p.judge(mismatched, spec, NOW).reason == "InvalidKeyPair"
    moved = p.certificate_spec(
        cert_obj(
            duration="1h",
            renewBefore="10m",
            privateKey={"algorithm": "ECDSA"},
            issuerRef={"name": "other", "kind": "ClusterIssuer"},
        )
    )
    assert p.judge(secret, moved, NOW).reason == "IncorrectIssuer"
    renamed = p.certificate_spec(
        cert_obj(duration="1h", dnsNames=["new.test"], privateKey={"algorithm": "ECDSA"})
    )
    assert p.judge(secret, renamed, NOW).reason == "SecretMismatch"


def test_tls_secret_shape(spec: p.CertificateSpec) -> None:
    secret = _secret(spec, NOW)
    assert secret["type"] == "kubernetes.io/tls"
    assert set(secret["data"]) == {"tls.crt", "tls.key", "ca.crt"}
    assert "ownerReferences" not in secret["metadata"]
    annotations = secret["metadata"]["annotations"]
    assert annotations[p.CERT_NAME] == "web" and annotations[p.ISSUER_KIND] == "ClusterIssuer"
    assert annotations[p.ALT_NAMES] == "web.test"


def test_condition_keeps_transition_time_and_status_equal_ignores_it() -> None:
    first = p.condition("Ready", True, "Ready", "ok", NOW, [], 1)
    later = p.condition("Ready", True, "Ready", "ok", NOW + dt.timedelta(hours=1), [first], 1)
    assert later["lastTransitionTime"] == first["lastTransitionTime"]
    flipped = p.condition("Ready", False, "Renewing", "x", NOW + dt.timedelta(hours=1), [first], 1)
    assert flipped["lastTransitionTime"] != first["lastTransitionTime"]
    assert p.status_equal(
        {"conditions": [first], "revision": 1}, {"conditions": [later], "revision": 1}
    )
    assert not p.status_equal({"conditions": [first]}, {"conditions": [flipped]})
