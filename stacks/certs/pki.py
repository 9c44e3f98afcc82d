"""The local CA: pure functions that make keys and X.509 certificates (no I/O).

Called by the certs controller (`stacks.certs.controller`) to issue certificates for
`Certificate` objects, and by the bootstrap `certs` stage to create the platform CA
(whose key then lives only in a Secret). Everything takes and returns PEM bytes or
frozen values; time is passed in (`now`) so callers and tests control it.

Supported keys follow cert-manager: RSA 2048/3072/4096 (default 2048) and ECDSA
P-256/P-384 (default P-256).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from stacks.errors import PermanentError

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

RSA_SIZES = (2048, 3072, 4096)
ECDSA_CURVES: dict[int, type[ec.EllipticCurve]] = {256: ec.SECP256R1, 384: ec.SECP384R1}

# cert-manager usage names -> how they land in the certificate
_KEY_USAGES = {
    "digital signature": "digital_signature",
    "content commitment": "content_commitment",
    "key encipherment": "key_encipherment",
    "data encipherment": "data_encipherment",
    "key agreement": "key_agreement",
    "cert sign": "key_cert_sign",
    "crl sign": "crl_sign",
}
_EXT_USAGES = {
    "server auth": ExtendedKeyUsageOID.SERVER_AUTH,
    "client auth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "code signing": ExtendedKeyUsageOID.CODE_SIGNING,
    "email protection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "timestamping": ExtendedKeyUsageOID.TIME_STAMPING,
    "ocsp signing": ExtendedKeyUsageOID.OCSP_SIGNING,
}
KNOWN_USAGES = frozenset({*_KEY_USAGES, *_EXT_USAGES, "signing", "encipher only", "decipher only"})
DEFAULT_USAGES = ("digital signature", "key encipherment")


@dataclass(frozen=True)
class KeySpec:
    """Which private key to make: algorithm RSA|ECDSA and its size (0 = default)."""

    algorithm: str = "RSA"
    size: int = 0

    def normalised(self) -> KeySpec:
        algorithm = (self.algorithm or "RSA").upper()
        if algorithm == "RSA":
            size = self.size or 2048
            if size not in RSA_SIZES:
                raise PermanentError(
                    f"unsupported RSA key size {size}",
                    hint=f"use privateKey.size one of {', '.join(map(str, RSA_SIZES))}",
                )
            return KeySpec("RSA", size)
        if algorithm == "ECDSA":
            size = self.size or 256
            if size not in ECDSA_CURVES:
                raise PermanentError(
                    f"unsupported ECDSA key size {size}", hint="use privateKey.size 256 or 384"
                )
            return KeySpec("ECDSA", size)
        raise PermanentError(
            f"unsupported private key algorithm {self.algorithm!r}",
            hint="use privateKey.algorithm RSA or ECDSA",
        )


@dataclass(frozen=True)
class CertRequest:
    """What to put in a certificate (the Certificate spec, validated)."""

    common_name: str = ""
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()
    is_ca: bool = False
    usages: tuple[str, ...] = ()
    duration: dt.timedelta = dt.timedelta(days=90)
    key: KeySpec = field(default_factory=KeySpec)


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its key, PEM-encoded (the key is PKCS#8)."""

    cert_pem: bytes
    key_pem: bytes


@dataclass(frozen=True)
class CertInfo:
    """What the controller reads back from an issued certificate."""

    not_before: dt.datetime
    not_after: dt.datetime
    common_name: str
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    is_ca: bool
    key_algorithm: str
    key_size: int
    serial: int

    @property
    def lifetime(self) -> dt.timedelta:
        return self.not_after - self.not_before


def generate_key(spec: KeySpec) -> PrivateKey:
    spec = spec.normalised()
    if spec.algorithm == "RSA":
        return rsa.generate_private_key(public_exponent=65537, key_size=spec.size)
    return ec.generate_private_key(ECDSA_CURVES[spec.size]())


def key_to_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_key(pem: bytes) -> PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as error:
        raise PermanentError("the private key is not a valid unencrypted PEM key") from error
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise PermanentError("the private key is neither RSA nor ECDSA")
    return key


def load_certs(pem: bytes) -> list[x509.Certificate]:
    """Every certificate in a PEM bundle (leaf first)."""
    try:
        return x509.load_pem_x509_certificates(pem)
    except ValueError as error:
        raise PermanentError("the certificate data is not valid PEM") from error


def _name(common_name: str) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "platform")]
    if common_name:
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def validate(request: CertRequest) -> None:
    """Raise PermanentError (with a hint) for a request no certificate can satisfy."""
    if not (request.common_name or request.dns_names or request.ip_addresses):
        raise PermanentError(
            "the certificate has no commonName, dnsNames or ipAddresses",
            hint="set at least one of spec.commonName, spec.dnsNames, spec.ipAddresses",
        )
    if len(request.common_name) > 64:
        raise PermanentError("commonName is longer than 64 characters", hint="use dnsNames")
    for address in request.ip_addresses:
        try:
            ipaddress.ip_address(address)
        except ValueError as error:
            raise PermanentError(f"ipAddresses has an invalid address {address!r}") from error
    unknown = [u for u in request.usages if u not in KNOWN_USAGES]
    if unknown:
        raise PermanentError(f"unknown usages: {', '.join(unknown)}")
    if request.duration < dt.timedelta(minutes=1):
        raise PermanentError("duration must be at least 1m")
    request.key.normalised()


def _builder(
    request: CertRequest,
    subject_key: PrivateKey,
    issuer: x509.Name,
    now: dt.datetime,
    not_after_limit: dt.datetime | None = None,
) -> x509.CertificateBuilder:
    validate(request)
    usages = request.usages or DEFAULT_USAGES
    key_flags = dict.fromkeys(_KEY_USAGES.values(), False)
    key_flags["encipher_only"] = False
    key_flags["decipher_only"] = False
    for usage in usages:
        if usage in _KEY_USAGES:
            key_flags[_KEY_USAGES[usage]] = True
        elif usage == "signing":
            key_flags["digital_signature"] = True
        elif usage == "encipher only":
            key_flags["key_agreement"] = key_flags["encipher_only"] = True
        elif usage == "decipher only":
            key_flags["key_agreement"] = key_flags["decipher_only"] = True
    if request.is_ca:
        key_flags["key_cert_sign"] = True
        key_flags["digital_signature"] = True
    if isinstance(subject_key, ec.EllipticCurvePrivateKey):
        key_flags["key_encipherment"] = False  # meaningless for EC keys
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(request.common_name))
        .issuer_name(issuer)
        .public_key(subject_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(
            min(now + request.duration, not_after_limit)
            if not_after_limit
            else now + request.duration
        )
        .add_extension(x509.KeyUsage(**key_flags), critical=True)
        .add_extension(x509.BasicConstraints(ca=request.is_ca, path_length=None), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(subject_key.public_key()), critical=False
        )
    )
    extended = [_EXT_USAGES[u] for u in usages if u in _EXT_USAGES]
    if extended:
        builder = builder.add_extension(x509.ExtendedKeyUsage(extended), critical=False)
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in request.dns_names]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in request.ip_addresses]
    if names:
        # Subject empty apart from O when there is no CN: SAN must then be critical.
        builder = builder.add_extension(
            x509.SubjectAlternativeName(names), critical=not request.common_name
        )
    return builder


def _sign(builder: x509.CertificateBuilder, key: PrivateKey) -> x509.Certificate:
    algorithm = (
        hashes.SHA384()
        if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size == 384
        else hashes.SHA256()
    )
    return builder.sign(key, algorithm)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def create_ca(
    common_name: str,
    now: dt.datetime,
    duration: dt.timedelta = dt.timedelta(days=3650),
    key: KeySpec | None = None,
) -> KeyPair:
    """A self-signed CA certificate and its key (for the bootstrap `certs` stage)."""
    return self_signed(
        CertRequest(
            common_name=common_name,
            is_ca=True,
            usages=("digital signature", "cert sign", "crl sign"),
            duration=duration,
            key=key or KeySpec("ECDSA", 256),
        ),
        now,
    )


def self_signed(request: CertRequest, now: dt.datetime, key_pem: bytes | None = None) -> KeyPair:
    """A certificate signed by its own key (`selfSigned` issuers). `key_pem` reuses a key."""
    key = load_key(key_pem) if key_pem else generate_key(request.key)
    builder = _builder(request, key, _name(request.common_name), now)
    builder = builder.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
    )
    return KeyPair(_pem(_sign(builder, key)), key_pem or key_to_pem(key))


def issue(
    request: CertRequest, ca: KeyPair, now: dt.datetime, key_pem: bytes | None = None
) -> KeyPair:
    """A certificate signed by `ca` (`ca` issuers). `cert_pem` of the result is the leaf only;
    the caller appends the chain."""
    ca_certs = load_certs(ca.cert_pem)
    if not ca_certs:
        raise PermanentError("the CA secret has no certificate in tls.crt")
    ca_cert = ca_certs[0]
    ca_key = load_key(ca.key_pem)
    if ca_key.public_key().public_numbers() != ca_cert.public_key().public_numbers():  # type: ignore[union-attr]
        raise PermanentError("the CA secret's tls.key does not match its tls.crt")
    try:
        constraints = ca_cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise PermanentError("the CA secret's certificate is not a CA (basicConstraints CA:FALSE)")
    key = load_key(key_pem) if key_pem else generate_key(request.key)
    # Never outlive the CA: clamp like a real CA would (the observed lifetime is what counts).
    builder = _builder(request, key, ca_cert.subject, now, ca_cert.not_valid_after_utc)
    builder = builder.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
    )
    return KeyPair(_pem(_sign(builder, ca_key)), key_pem or key_to_pem(key))


def inspect(cert_pem: bytes) -> CertInfo:
    """Read the first certificate of a PEM bundle."""
    certs = load_certs(cert_pem)
    if not certs:
        raise PermanentError("no certificate in the PEM data")
    cert = certs[0]
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns_names = tuple(san.get_values_for_type(x509.DNSName))
        ips = tuple(str(i) for i in san.get_values_for_type(x509.IPAddress))
    except x509.ExtensionNotFound:
        dns_names, ips = (), ()
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    common = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    public = cert.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        algorithm, size = "RSA", public.key_size
    elif isinstance(public, ec.EllipticCurvePublicKey):
        algorithm, size = "ECDSA", public.curve.key_size
    else:
        algorithm, size = "unknown", 0
    return CertInfo(
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        common_name=str(common[0].value) if common else "",
        dns_names=dns_names,
        ip_addresses=ips,
        is_ca=is_ca,
        key_algorithm=algorithm,
        key_size=size,
        serial=cert.serial_number,
    )


def key_matches(cert_pem: bytes, key_pem: bytes) -> bool:
    """Does the private key belong to the (first) certificate?"""
    try:
        cert = load_certs(cert_pem)[0]
        key = load_key(key_pem)
    except (PermanentError, IndexError):
        return False
    return bool(key.public_key().public_numbers() == cert.public_key().public_numbers())  # type: ignore[union-attr]


def renewal_time(
    not_before: dt.datetime, not_after: dt.datetime, renew_before: dt.timedelta | None
) -> dt.datetime:
    """cert-manager's rule, from the OBSERVED certificate: notAfter - renewBefore if
    0 < renewBefore < lifetime, else notAfter - lifetime/3; truncated to the second.

    Using the actual lifetime (not the requested duration) is what prevents the renewal
    loop when a CA clamps the validity (cert-manager#4423)."""
    lifetime = not_after - not_before
    if renew_before is not None and dt.timedelta(0) < renew_before < lifetime:
        before = renew_before
    else:
        before = lifetime / 3
    return (not_after - before).replace(microsecond=0)


def first_pem(bundle: bytes) -> bytes:
    """The first certificate of a PEM bundle, re-encoded."""
    certs = load_certs(bundle)
    if not certs:
        raise PermanentError("no certificate in the PEM data")
    return _pem(certs[0])
