"""Pure decisions of the certs controller: parse specs, judge a Secret, build Secret/status.

No I/O. Called by `stacks.certs.controller` for every reconcile; unit-tested in
tests/unit/certs/. Field names follow cert-manager (cert-manager.io/v1) under our group
`certs.platform.local`; Secret annotations use the prefix `certs.platform.local/`.
"""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass
from typing import Any

from stacks.certs import pki
from stacks.errors import PermanentError
from stacks.kube import conditions, durations

GROUP = "certs.platform.local"
API_VERSION = f"{GROUP}/v1"
FIELD_MANAGER = "platform-certs"
ANNOTATION = f"{GROUP}/"
CERT_NAME = ANNOTATION + "certificate-name"
ISSUER_NAME = ANNOTATION + "issuer-name"
ISSUER_KIND = ANNOTATION + "issuer-kind"
ISSUER_GROUP = ANNOTATION + "issuer-group"
COMMON_NAME = ANNOTATION + "common-name"
ALT_NAMES = ANNOTATION + "alt-names"
IP_SANS = ANNOTATION + "ip-sans"
MANAGED_LABEL = ANNOTATION + "managed"
# ingress-shim annotations
INGRESS_CLUSTER_ISSUER = ANNOTATION + "cluster-issuer"
INGRESS_ISSUER = ANNOTATION + "issuer"
INGRESS_DURATION = ANNOTATION + "duration"
INGRESS_RENEW_BEFORE = ANNOTATION + "renew-before"

DEFAULT_DURATION = dt.timedelta(days=90)


def parse_duration(text: str) -> dt.timedelta:
    """A Go duration string ("2160h", "59m50s", "1h30m") as a timedelta."""
    if not text.strip():
        raise PermanentError("empty duration")
    try:
        return dt.timedelta(seconds=durations.parse_seconds(text))
    except durations.DurationError:
        raise PermanentError(
            f"invalid duration {text.strip()!r}",
            hint='use Go duration syntax, e.g. "2160h" or "59m50s"',
        ) from None


def format_time(moment: dt.datetime) -> str:
    return conditions.timestamp(moment)


def parse_time(text: str) -> dt.datetime | None:
    return conditions.parse_timestamp(text)


@dataclass(frozen=True)
class IssuerRef:
    name: str
    kind: str  # Issuer | ClusterIssuer
    group: str = GROUP


@dataclass(frozen=True)
class CertificateSpec:
    secret_name: str
    issuer: IssuerRef
    request: pki.CertRequest
    renew_before: dt.timedelta | None


def certificate_spec(obj: dict[str, Any]) -> CertificateSpec:
    """The validated spec of a Certificate object (PermanentError when it cannot work)."""
    spec = obj.get("spec") or {}
    secret_name = str(spec.get("secretName") or "")
    if not secret_name:
        raise PermanentError("spec.secretName is required")
    ref = spec.get("issuerRef") or {}
    kind = str(ref.get("kind") or "Issuer")
    group = str(ref.get("group") or GROUP)
    if kind not in ("Issuer", "ClusterIssuer") or group not in (GROUP, "cert-manager.io"):
        raise PermanentError(
            f"issuerRef {group}/{kind} is not served by this controller",
            hint=f"use issuerRef.kind Issuer or ClusterIssuer of group {GROUP}",
        )
    if not ref.get("name"):
        raise PermanentError("spec.issuerRef.name is required")
    key = spec.get("privateKey") or {}
    request = pki.CertRequest(
        common_name=str(spec.get("commonName") or ""),
        dns_names=tuple(str(n) for n in spec.get("dnsNames") or ()),
        ip_addresses=tuple(str(a) for a in spec.get("ipAddresses") or ()),
        is_ca=bool(spec.get("isCA", False)),
        usages=tuple(str(u) for u in spec.get("usages") or ()),
        duration=parse_duration(str(spec["duration"]))
        if spec.get("duration")
        else DEFAULT_DURATION,
        key=pki.KeySpec(str(key.get("algorithm") or "RSA"), int(key.get("size") or 0)).normalised(),
    )
    pki.validate(request)
    renew_before = parse_duration(str(spec["renewBefore"])) if spec.get("renewBefore") else None
    return CertificateSpec(
        secret_name, IssuerRef(str(ref["name"]), kind, GROUP), request, renew_before
    )


@dataclass(frozen=True)
class Judgement:
    """Whether the Secret holds a good certificate for the spec, and why (not)."""

    ok: bool
    reason: str  # Ready, DoesNotExist, MissingData, InvalidKeyPair, IncorrectIssuer, ...
    message: str
    info: pki.CertInfo | None = None
    renewal: dt.datetime | None = None


def _decode(data: dict[str, Any], key: str) -> bytes:
    value = data.get(key)
    if not value:
        return b""
    try:
        return base64.b64decode(str(value))
    except ValueError:
        return b""


def judge(secret: dict[str, Any] | None, spec: CertificateSpec, now: dt.datetime) -> Judgement:
    """cert-manager's issuance policies, in order: the first failing one decides."""
    if secret is None:
        return Judgement(
            False,
            "DoesNotExist",
            f"Issuing certificate as Secret {spec.secret_name!r} does not exist",
        )
    data = secret.get("data") or {}
    cert_pem, key_pem = _decode(data, "tls.crt"), _decode(data, "tls.key")
    if not cert_pem or not key_pem:
        return Judgement(
            False,
            "MissingData",
            "Issuing certificate as Secret does not contain a certificate and key",
        )
    try:
        info = pki.inspect(cert_pem)
    except PermanentError:
        return Judgement(
            False,
            "InvalidCertificate",
            "Issuing certificate as Secret contains an invalid certificate",
        )
    if not pki.key_matches(cert_pem, key_pem):
        return Judgement(
            False,
            "InvalidKeyPair",
            "Issuing certificate as Secret contains a private key that does not match the certificate",
        )
    annotations = (secret.get("metadata") or {}).get("annotations") or {}
    if (
        annotations.get(ISSUER_NAME) != spec.issuer.name
        or annotations.get(ISSUER_KIND) != spec.issuer.kind
    ):
        return Judgement(
            False,
            "IncorrectIssuer",
            "Issuing certificate as Secret was previously issued by a different issuer",
        )
    request = spec.request
    wanted = (
        request.common_name,
        sorted(request.dns_names),
        sorted(request.ip_addresses),
        request.is_ca,
        request.key.algorithm,
        request.key.size,
    )
    found = (
        info.common_name,
        sorted(info.dns_names),
        sorted(info.ip_addresses),
        info.is_ca,
        info.key_algorithm,
        info.key_size,
    )
    if wanted != found:
        return Judgement(
            False,
            "SecretMismatch",
            "Issuing certificate as Secret does not match the Certificate spec",
        )
    # The requested duration changed: reissue (only when it differs from what was asked,
    # not from what a CA granted, so a clamped certificate does not loop).
    asked = annotations.get(ANNOTATION + "duration")
    if asked and asked != str(int(request.duration.total_seconds())):
        return Judgement(
            False, "SecretMismatch", "Issuing certificate as the requested duration changed"
        )
    if now >= info.not_after:
        return Judgement(
            False, "Expired", f"Certificate expired on {format_time(info.not_after)}", info
        )
    renewal = pki.renewal_time(info.not_before, info.not_after, spec.renew_before)
    if now >= renewal:
        return Judgement(
            False,
            "Renewing",
            f"Renewing certificate as renewal was scheduled at {format_time(renewal)}",
            info,
            renewal,
        )
    return Judgement(True, "Ready", "Certificate is up to date and has not expired", info, renewal)


def tls_secret(
    cert_obj: dict[str, Any],
    spec: CertificateSpec,
    pair: pki.KeyPair,
    chain_pem: bytes,
    ca_pem: bytes,
) -> dict[str, Any]:
    """The `kubernetes.io/tls` Secret for an issued certificate (no ownerRef, on purpose)."""
    meta = cert_obj.get("metadata") or {}
    request = spec.request
    annotations = {
        CERT_NAME: str(meta.get("name", "")),
        ISSUER_NAME: spec.issuer.name,
        ISSUER_KIND: spec.issuer.kind,
        ISSUER_GROUP: spec.issuer.group,
        COMMON_NAME: request.common_name,
        ALT_NAMES: ",".join(request.dns_names),
        IP_SANS: ",".join(request.ip_addresses),
        ANNOTATION + "duration": str(int(request.duration.total_seconds())),
    }

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {
            "name": spec.secret_name,
            "namespace": str(meta.get("namespace", "")),
            "annotations": annotations,
            "labels": {MANAGED_LABEL: "true"},
        },
        "data": {
            "tls.crt": b64(pair.cert_pem + chain_pem),
            "tls.key": b64(pair.key_pem),
            "ca.crt": b64(ca_pem),
        },
    }


def condition(
    kind: str,
    status: bool,
    reason: str,
    message: str,
    now: dt.datetime,
    previous: list[dict[str, Any]],
    generation: int,
) -> dict[str, Any]:
    """A condition; lastTransitionTime moves only when the status flips."""
    return conditions.condition(
        kind, status, reason, message, format_time(now), previous, generation
    )


status_equal = conditions.status_equal
