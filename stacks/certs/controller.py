"""The certs controller: Issuers, Certificates and the ingress shim, on the controller runtime.

Keys are (kind, namespace, name) tuples:
    ("Certificate", ns, name)   issue/renew into a `kubernetes.io/tls` Secret, write status
    ("Issuer", ns, name) / ("ClusterIssuer", "", name)   verify the CA, write Ready
    ("Ingress", ns, name)       ingress-shim: a Certificate per spec.tls[] entry

Decisions are pure (`stacks.certs.policy`, `stacks.certs.pki`); this module does the
reads and writes through `stacks.kube.client.KubeClient`. Created by
`stacks.certs.program`. Private keys only travel into Secrets, never into logs,
events or status.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stacks.certs import pki
from stacks.certs import policy as p
from stacks.errors import PermanentError, PlatformError, WaitingError
from stacks.kube.client import KubeClient, WatchEvent
from stacks.kube.controller import Controller, Key, Watch
from stacks.kube.events import EventRecorder

log = logging.getLogger(__name__)

INGRESS_API = "networking.k8s.io/v1"


@dataclass(frozen=True)
class Options:
    cluster_resource_namespace: str = "platform-certs"
    workers: int = 4
    watch_namespace: str | None = None


class CertsController:
    def __init__(
        self,
        client: KubeClient,
        options: Options,
        events: EventRecorder | None = None,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.client = client
        self.options = options
        self.events = events
        self.clock = clock
        self.issued = 0
        ns = options.watch_namespace
        self.runtime = Controller(
            name="certs",
            client=client,
            reconcile=self.reconcile,
            workers=options.workers,
            watches=[
                Watch(p.API_VERSION, "Certificate", self._keys("Certificate"), namespace=ns),
                Watch(p.API_VERSION, "Issuer", self._issuer_keys("Issuer"), namespace=ns),
                Watch(p.API_VERSION, "ClusterIssuer", self._issuer_keys("ClusterIssuer")),
                Watch(INGRESS_API, "Ingress", self._keys("Ingress"), namespace=ns),
                Watch(
                    "v1",
                    "Secret",
                    self._secret_keys,
                    namespace=ns,
                    label_selector=f"{p.MANAGED_LABEL}=true",
                ),
                # The CA Secrets of ClusterIssuers: an issuer created before its CA (the
                # bootstrap creates the platform CA after the issuer arrives from git)
                # becomes Ready the moment the Secret appears, not at its next retry.
                Watch(
                    "v1",
                    "Secret",
                    self._ca_secret_keys,
                    namespace=options.cluster_resource_namespace,
                    name="ca-secrets",
                ),
            ],
        )

    # ---- event -> keys -----------------------------------------------------------------

    @staticmethod
    def _keys(kind: str) -> Callable[[WatchEvent], list[Key]]:
        def to_keys(event: WatchEvent) -> list[Key]:
            meta = event.object.get("metadata") or {}
            return [(kind, str(meta.get("namespace") or ""), str(meta.get("name", "")))]

        return to_keys

    def _issuer_keys(self, kind: str) -> Callable[[WatchEvent], list[Key]]:
        def to_keys(event: WatchEvent) -> list[Key]:
            meta = event.object.get("metadata") or {}
            name, namespace = str(meta.get("name", "")), str(meta.get("namespace") or "")
            keys: list[Key] = [(kind, namespace, name)]
            informer = self.runtime.informers.get("Certificate")
            for cert in informer.items() if informer else []:
                ref = (cert.get("spec") or {}).get("issuerRef") or {}
                cmeta = cert["metadata"]
                if (
                    ref.get("name") == name
                    and (ref.get("kind") or "Issuer") == kind
                    and (kind == "ClusterIssuer" or cmeta.get("namespace") == namespace)
                ):
                    keys.append(("Certificate", str(cmeta.get("namespace")), str(cmeta["name"])))
            return keys

        return to_keys

    def _ca_secret_keys(self, event: WatchEvent) -> list[Key]:
        """The ClusterIssuers (and Issuers of that namespace) whose CA is this Secret."""
        meta = event.object.get("metadata") or {}
        name, namespace = meta.get("name"), str(meta.get("namespace") or "")
        keys: list[Key] = []
        for kind in ("ClusterIssuer", "Issuer"):
            informer = self.runtime.informers.get(kind)
            for issuer in informer.items() if informer else []:
                imeta = issuer.get("metadata") or {}
                if kind == "Issuer" and imeta.get("namespace") != namespace:
                    continue
                if ((issuer.get("spec") or {}).get("ca") or {}).get("secretName") == name:
                    keys.append((kind, str(imeta.get("namespace") or ""), str(imeta["name"])))
        return keys

    @staticmethod
    def _secret_keys(event: WatchEvent) -> list[Key]:
        meta = event.object.get("metadata") or {}
        owner = (meta.get("annotations") or {}).get(p.CERT_NAME)
        return [("Certificate", str(meta.get("namespace") or ""), str(owner))] if owner else []

    # ---- dispatch ----------------------------------------------------------------------

    def reconcile(self, key: Key) -> float | None:
        assert isinstance(key, tuple)
        kind, namespace, name = (str(part) for part in key)
        if kind == "Certificate":
            return self.reconcile_certificate(namespace, name)
        if kind in ("Issuer", "ClusterIssuer"):
            return self.reconcile_issuer(kind, namespace, name)
        if kind == "Ingress":
            return self.reconcile_ingress(namespace, name)
        return None

    def _event(self, obj: dict[str, Any], reason: str, message: str, warning: bool = False) -> None:
        if self.events is not None:
            self.events.record(obj, reason, message, warning)

    # ---- issuers -----------------------------------------------------------------------

    def _ca_namespace(self, kind: str, namespace: str) -> str:
        return self.options.cluster_resource_namespace if kind == "ClusterIssuer" else namespace

    def _load_ca(self, issuer: dict[str, Any], kind: str, namespace: str) -> pki.KeyPair:
        secret_name = str(((issuer.get("spec") or {}).get("ca") or {}).get("secretName") or "")
        if not secret_name:
            raise PermanentError("spec.ca.secretName is required")
        where = self._ca_namespace(kind, namespace)
        secret = self.client.get("v1", "Secret", secret_name, where)
        if secret is None:
            raise WaitingError(f"CA Secret '{where}/{secret_name}' does not exist", retry_after=10)
        data = secret.get("data") or {}
        cert_pem = base64.b64decode(str(data.get("tls.crt") or ""))
        key_pem = base64.b64decode(str(data.get("tls.key") or ""))
        if not cert_pem or not key_pem:
            raise PermanentError(f"CA Secret '{where}/{secret_name}' lacks tls.crt or tls.key")
        if not pki.key_matches(cert_pem, key_pem):
            raise PermanentError(
                f"CA Secret '{where}/{secret_name}': tls.key does not match tls.crt"
            )
        info = pki.inspect(cert_pem)
        if not info.is_ca:
            raise PermanentError(
                f"CA Secret '{where}/{secret_name}' does not hold a CA certificate"
            )
        return pki.KeyPair(cert_pem, key_pem)

    def reconcile_issuer(self, kind: str, namespace: str, name: str) -> float | None:
        issuer = self.client.get(p.API_VERSION, kind, name, namespace or None)
        if issuer is None:
            return None
        spec = issuer.get("spec") or {}
        now = self.clock()
        previous = (issuer.get("status") or {}).get("conditions") or []
        generation = int(issuer["metadata"].get("generation") or 0)
        retry: float | None = None
        if "ca" in spec:
            try:
                self._load_ca(issuer, kind, namespace)
                cond = p.condition(
                    "Ready",
                    True,
                    "KeyPairVerified",
                    "Signing CA verified",
                    now,
                    previous,
                    generation,
                )
            except WaitingError as error:
                cond = p.condition(
                    "Ready", False, "ErrGetKeyPair", str(error), now, previous, generation
                )
                retry = error.retry_after
            except PermanentError as error:
                cond = p.condition(
                    "Ready", False, "ErrInvalidKeyPair", str(error), now, previous, generation
                )
        elif "selfSigned" in spec:
            cond = p.condition("Ready", True, "IsReady", "", now, previous, generation)
        else:
            cond = p.condition(
                "Ready",
                False,
                "InvalidConfig",
                "set spec.selfSigned or spec.ca",
                now,
                previous,
                generation,
            )
        status = {"conditions": [cond]}
        if not p.status_equal(issuer.get("status") or {}, status):
            self.client.apply_status(self._status_patch(issuer, status), p.FIELD_MANAGER)
        return retry

    # ---- certificates ------------------------------------------------------------------

    def _status_patch(self, obj: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
        meta = {"name": obj["metadata"]["name"]}
        if obj["metadata"].get("namespace"):
            meta["namespace"] = obj["metadata"]["namespace"]
        return {
            "apiVersion": obj["apiVersion"],
            "kind": obj["kind"],
            "metadata": meta,
            "status": status,
        }

    def _write_status(self, cert: dict[str, Any], status: dict[str, Any]) -> None:
        if not p.status_equal(cert.get("status") or {}, status):
            self.client.apply_status(self._status_patch(cert, status), p.FIELD_MANAGER)

    def reconcile_certificate(self, namespace: str, name: str) -> float | None:
        cert = self.client.get(p.API_VERSION, "Certificate", name, namespace)
        if cert is None:
            return None
        now = self.clock()
        old = cert.get("status") or {}
        previous = old.get("conditions") or []
        generation = int(cert["metadata"].get("generation") or 0)
        base = {
            k: v
            for k, v in old.items()
            if k in ("revision", "notBefore", "notAfter", "renewalTime")
        }

        def fail(reason: str, message: str) -> None:
            status = dict(base)
            status["conditions"] = [
                p.condition("Ready", False, reason, message, now, previous, generation)
            ]
            self._write_status(cert, status)

        try:
            spec = p.certificate_spec(cert)
        except PermanentError as error:
            fail("Invalid", str(error))
            raise
        issuer = self.client.get(
            p.API_VERSION,
            spec.issuer.kind,
            spec.issuer.name,
            namespace if spec.issuer.kind == "Issuer" else None,
        )
        if issuer is None:
            message = f"{spec.issuer.kind} {spec.issuer.name!r} does not exist"
            fail("IssuerNotFound", message)
            raise WaitingError(message, retry_after=10)
        secret = self.client.get("v1", "Secret", spec.secret_name, namespace)
        judgement = p.judge(secret, spec, now)
        if not judgement.ok:
            if secret is not None and secret.get("type") not in (None, "kubernetes.io/tls"):
                message = f"Secret {spec.secret_name!r} exists with type {secret.get('type')}, not kubernetes.io/tls"
                fail("SecretMismatch", message)
                raise PermanentError(message, hint="delete that Secret or pick another secretName")
            log.info("issuing Certificate '%s/%s': %s", namespace, name, judgement.reason)
            try:
                self._issue(cert, spec, issuer, now)
            except WaitingError as error:
                fail("Issuing", str(error))
                raise
            except PermanentError as error:
                fail("Failed", str(error))
                self._event(cert, "Failed", str(error), warning=True)
                raise
            revision = int(old.get("revision") or 0) + 1
            self.issued += 1
            secret = self.client.get("v1", "Secret", spec.secret_name, namespace)
            judgement = p.judge(secret, spec, now)
            self._event(
                cert,
                "Issuing",
                f"The certificate has been successfully issued (revision {revision}, {judgement.reason if not judgement.ok else 'Ready'})",
            )
        else:
            revision = int(old.get("revision") or 0) or 1
        info = judgement.info
        if info is None or judgement.renewal is None:
            fail(judgement.reason, judgement.message)
            raise WaitingError(
                f"Certificate '{namespace}/{name}': {judgement.message}", retry_after=5
            )
        status: dict[str, Any] = {
            "conditions": [
                p.condition(
                    "Ready",
                    judgement.ok,
                    judgement.reason,
                    judgement.message,
                    now,
                    previous,
                    generation,
                )
            ],
            "notBefore": p.format_time(info.not_before),
            "notAfter": p.format_time(info.not_after),
            "renewalTime": p.format_time(judgement.renewal),
            "revision": revision,
        }
        self._write_status(cert, status)
        if not judgement.ok:
            raise WaitingError(judgement.message, retry_after=5)
        return max(1.0, (judgement.renewal - self.clock()).total_seconds())

    def _issue(
        self,
        cert: dict[str, Any],
        spec: p.CertificateSpec,
        issuer: dict[str, Any],
        now: dt.datetime,
    ) -> None:
        issuer_spec = issuer.get("spec") or {}
        namespace = str(cert["metadata"]["namespace"])
        if "selfSigned" in issuer_spec:
            pair = pki.self_signed(spec.request, now)
            chain, ca_pem = b"", pair.cert_pem
        elif "ca" in issuer_spec:
            ca = self._load_ca(issuer, spec.issuer.kind, namespace)
            pair = pki.issue(spec.request, ca, now)
            ca_pem = pki.first_pem(ca.cert_pem)
            chain = ca.cert_pem  # the CA's own bundle (intermediate + root if it has one)
        else:
            raise PermanentError(
                f"{spec.issuer.kind} {spec.issuer.name!r} has neither selfSigned nor ca"
            )
        self.client.apply(p.tls_secret(cert, spec, pair, chain, ca_pem), p.FIELD_MANAGER)

    # ---- ingress shim -------------------------------------------------------------------

    def reconcile_ingress(self, namespace: str, name: str) -> float | None:
        ingress = self.runtime.informer("Ingress").get_named(namespace, name)
        if ingress is None:
            return None  # the garbage collector removes Certificates it owned
        annotations = ingress["metadata"].get("annotations") or {}
        if p.INGRESS_CLUSTER_ISSUER in annotations:
            issuer_name, kind = annotations[p.INGRESS_CLUSTER_ISSUER], "ClusterIssuer"
        elif p.INGRESS_ISSUER in annotations:
            issuer_name, kind = annotations[p.INGRESS_ISSUER], "Issuer"
        else:
            return None
        desired: dict[str, list[str]] = {}
        for tls in (ingress.get("spec") or {}).get("tls") or []:
            secret_name, hosts = tls.get("secretName"), tls.get("hosts") or []
            if not secret_name or not hosts:
                log.warning(
                    "Ingress '%s/%s': a spec.tls entry without secretName or hosts is skipped",
                    namespace,
                    name,
                )
                continue
            desired.setdefault(str(secret_name), []).extend(str(h) for h in hosts)
        owner = {
            "apiVersion": INGRESS_API,
            "kind": "Ingress",
            "name": name,
            "uid": ingress["metadata"]["uid"],
            "controller": True,
        }
        certificates = self.runtime.informer("Certificate")
        for secret_name, hosts in desired.items():
            existing = certificates.get_named(namespace, secret_name)
            if existing is not None and not any(
                ref.get("uid") == owner["uid"]
                for ref in existing["metadata"].get("ownerReferences") or []
            ):
                self._event(
                    ingress,
                    "BadConfig",
                    f"Certificate {secret_name!r} exists and is not owned by this Ingress",
                    warning=True,
                )
                continue
            spec: dict[str, Any] = {
                "secretName": secret_name,
                "dnsNames": sorted(set(hosts)),
                "issuerRef": {"name": issuer_name, "kind": kind, "group": p.GROUP},
            }
            if p.INGRESS_DURATION in annotations:
                spec["duration"] = annotations[p.INGRESS_DURATION]
            if p.INGRESS_RENEW_BEFORE in annotations:
                spec["renewBefore"] = annotations[p.INGRESS_RENEW_BEFORE]
            self.client.apply(
                {
                    "apiVersion": p.API_VERSION,
                    "kind": "Certificate",
                    "metadata": {
                        "name": secret_name,
                        "namespace": namespace,
                        "ownerReferences": [owner],
                    },
                    "spec": spec,
                },
                p.FIELD_MANAGER,
            )
        for cert in certificates.items():
            meta = cert["metadata"]
            if meta.get("namespace") != namespace or meta["name"] in desired:
                continue
            if any(ref.get("uid") == owner["uid"] for ref in meta.get("ownerReferences") or []):
                try:
                    self.client.delete(p.API_VERSION, "Certificate", meta["name"], namespace)
                except PlatformError as error:
                    log.warning(
                        "failed to delete Certificate '%s/%s': %s", namespace, meta["name"], error
                    )
        return None
