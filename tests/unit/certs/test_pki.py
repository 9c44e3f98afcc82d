"""Unit tests for the local CA (stacks.certs.pki): pure, no I/O."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509

from stacks.certs import pki
from stacks.errors import PermanentError

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def ca() -> pki.KeyPair:
    return pki.create_ca("test CA", NOW)


def test_ca_is_a_ca_and_self_signed(ca: pki.KeyPair) -> None:
    info = pki.inspect(ca.cert_pem)
    assert info.is_ca and info.common_name == "test CA"
    assert pki.key_matches(ca.cert_pem, ca.key_pem)
    cert = pki.load_certs(ca.cert_pem)[0]
    cert.verify_directly_issued_by(cert)


@pytest.mark.parametrize(
    ("algorithm", "size", "want"),
    [("RSA", 0, 2048), ("RSA", 4096, 4096), ("ECDSA", 0, 256), ("ECDSA", 384, 384)],
)
def test_issue_leaf_with_key_type_and_sans(
    ca: pki.KeyPair, algorithm: str, size: int, want: int
) -> None:
    request = pki.CertRequest(
        common_name="web",
        dns_names=("a.test", "b.test"),
        ip_addresses=("10.0.0.1", "::1"),
        usages=("digital signature", "server auth"),
        duration=dt.timedelta(hours=2),
        key=pki.KeySpec(algorithm, size),
    )
    pair = pki.issue(request, ca, NOW)
    info = pki.inspect(pair.cert_pem)
    assert (info.key_algorithm, info.key_size) == (algorithm, want)
    assert info.dns_names == ("a.test", "b.test")
    assert info.ip_addresses == ("10.0.0.1", "::1")
    assert not info.is_ca
    assert info.lifetime == dt.timedelta(hours=2)
    leaf = pki.load_certs(pair.cert_pem)[0]
    leaf.verify_directly_issued_by(pki.load_certs(ca.cert_pem)[0])
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.SERVER_AUTH in eku


def test_issue_is_clamped_to_the_ca_lifetime(ca: pki.KeyPair) -> None:
    pair = pki.issue(
        pki.CertRequest(dns_names=("x.test",), duration=dt.timedelta(days=10000)), ca, NOW
    )
    assert pki.inspect(pair.cert_pem).not_after == pki.inspect(ca.cert_pem).not_after


def test_intermediate_ca_and_reused_key(ca: pki.KeyPair) -> None:
    inter = pki.issue(
        pki.CertRequest(common_name="inter", is_ca=True, key=pki.KeySpec("ECDSA", 256)), ca, NOW
    )
    assert pki.inspect(inter.cert_pem).is_ca
    again = pki.issue(pki.CertRequest(dns_names=("y.test",)), inter, NOW, key_pem=inter.key_pem)
    assert again.key_pem == inter.key_pem


def test_non_ca_cannot_sign(ca: pki.KeyPair) -> None:
    leaf = pki.issue(pki.CertRequest(dns_names=("z.test",)), ca, NOW)
    with pytest.raises(PermanentError, match="not a CA"):
        pki.issue(pki.CertRequest(dns_names=("w.test",)), leaf, NOW)


@pytest.mark.parametrize(
    "request_",
    [
        pki.CertRequest(),
        pki.CertRequest(common_name="x" * 65),
        pki.CertRequest(dns_names=("a",), ip_addresses=("not-an-ip",)),
        pki.CertRequest(dns_names=("a",), usages=("teleport",)),
        pki.CertRequest(dns_names=("a",), key=pki.KeySpec("RSA", 1024)),
        pki.CertRequest(dns_names=("a",), key=pki.KeySpec("Ed448")),
    ],
)
def test_invalid_requests_are_permanent(request_: pki.CertRequest) -> None:
    with pytest.raises(PermanentError):
        pki.validate(request_)


def test_renewal_time_follows_cert_manager() -> None:
    start = NOW
    end = NOW + dt.timedelta(hours=1)
    assert pki.renewal_time(
        start, end, dt.timedelta(minutes=59, seconds=50)
    ) == start + dt.timedelta(seconds=10)
    assert pki.renewal_time(start, end, None) == end - dt.timedelta(minutes=20)
    # renewBefore >= the actual lifetime: lifetime/3, not an immediate renewal (no loop)
    assert pki.renewal_time(start, end, dt.timedelta(hours=2)) == end - dt.timedelta(minutes=20)
    assert pki.renewal_time(start, end, dt.timedelta(hours=1)) == end - dt.timedelta(minutes=20)
    # truncated to the second
    odd = pki.renewal_time(start, start + dt.timedelta(seconds=10), None)
    assert odd.microsecond == 0


def test_key_mismatch_detected(ca: pki.KeyPair) -> None:
    other = pki.create_ca("other", NOW)
    assert not pki.key_matches(ca.cert_pem, other.key_pem)
    assert not pki.key_matches(b"junk", ca.key_pem)
