"""The certs controller: Issuers, Certificates and the ingress shim, on the controller runtime.

Keys are (kind, namespace, name) tuples:
    ("Certificate", ns, name)   issue/renew into a `kubernetes.io/tls` Secret, write status
    ("Issuer", ns, name) / ("ClusterIssuer", "", name)   verify the CA, write Ready
    ("Ingress", ns, name)       ingress-shim: a Certificate per spec.tls[] entry

Each kind is reconciled in the controller shape of stacks/kube/controller.py (the
example docs/controllers.md points at). A Certificate: `load` reads it into a
`_CertAttempt`, the named steps `spec`, `issuer`, `issue` and `judge` fill that in or
raise (WaitingError: come back later; PermanentError: a person must act), and `finish`
writes status once, with the Ready reason the failing step set, whatever happened. An
Issuer: steps `spec` and `ca`, Ready written in `finish`. An Ingress: steps `issuer`,
`certificates` and `prune` (it has no status of ours, so its `finish` writes none).

Decisions are pure (`stacks.certs.policy`, `stacks.certs.pki`); this module does the
reads and writes through `stacks.kube.client.KubeClient`. Created by
`stacks.certs.program`. Private keys only travel into Secrets, never into logs,
events or status.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from stacks.certs import pki
from stacks.certs import policy as p
from stacks.errors import PermanentError, PlatformError, WaitingError
from stacks.kube.client import KubeClient, WatchEvent
from stacks.kube.controller import (
    STOP,
    ErrorKind,
    ObjectReconciler,
    QueueKey,
    Result,
    Runtime,
    Step,
    Stop,
    Watch,
    error_kind,
    kind_key,
    split_key,
)
from stacks.kube.events import EventRecorder

log = logging.getLogger(__name__)

INGRESS_API = "networking.k8s.io/v1"


@dataclass(frozen=True)
class Options:
    cluster_resource_namespace: str = "platform-certs"
    workers: int = 4
    watch_namespace: str | None = None


@dataclass
class _CertAttempt:
    """The subject of one Certificate reconcile: what its steps learn, for `finish`."""

    cert: dict[str, Any]
    now: dt.datetime
    spec: p.CertificateSpec | None = None
    issuer: dict[str, Any] | None = None
    secret: dict[str, Any] | None = None
    judgement: p.Judgement | None = None
    revision: int = 0
    # The Ready reason if the current step fails (cert-manager's names).
    failing_reason: str = "Invalid"
    status: dict[str, Any] = field(default_factory=dict)

    @property
    def old(self) -> dict[str, Any]:
        return dict(self.cert.get("status") or {})

    @property
    def label(self) -> str:
        meta = self.cert["metadata"]
        return f"'{meta.get('namespace')}/{meta['name']}'"


class CertificateReconciler(ObjectReconciler[_CertAttempt]):
    """Certificates: spec -> issuer -> issue (when due) -> judge; status in `finish`."""

    def __init__(self, controller: CertsController) -> None:
        self.c = controller

    def load(self, key: QueueKey) -> _CertAttempt | None:
        _, namespace, name = split_key(key)
        cert = self.c.client.get(p.API_VERSION, "Certificate", str(name), str(namespace))
        return _CertAttempt(cert, self.c.clock()) if cert is not None else None

    def steps(self, subject: _CertAttempt) -> Sequence[Step[_CertAttempt]]:
        return [
            ("spec", self._spec),
            ("issuer", self._issuer),
            ("issue", self._issue_if_due),
            ("judge", self._judge),
        ]

    def _spec(self, a: _CertAttempt) -> None:
        a.spec = p.certificate_spec(a.cert)

    def _issuer(self, a: _CertAttempt) -> None:
        assert a.spec is not None
        a.failing_reason = "IssuerNotFound"
        ref = a.spec.issuer
        namespace = str(a.cert["metadata"]["namespace"])
        a.issuer = self.c.client.get(
            p.API_VERSION, ref.kind, ref.name, namespace if ref.kind == "Issuer" else None
        )
        if a.issuer is None:
            raise WaitingError(f"{ref.kind} {ref.name!r} does not exist", retry_after=10)

    def _issue_if_due(self, a: _CertAttempt) -> None:
        assert a.spec is not None and a.issuer is not None
        namespace, name = str(a.cert["metadata"]["namespace"]), str(a.cert["metadata"]["name"])
        a.secret = self.c.client.get("v1", "Secret", a.spec.secret_name, namespace)
        a.judgement = p.judge(a.secret, a.spec, a.now)
        if a.judgement.ok:
            a.revision = int(a.old.get("revision") or 0) or 1
            return
        if a.secret is not None and a.secret.get("type") not in (None, "kubernetes.io/tls"):
            a.failing_reason = "SecretMismatch"
            raise PermanentError(
                f"Secret {a.spec.secret_name!r} exists with type {a.secret.get('type')}, not kubernetes.io/tls",
                hint="delete that Secret or pick another secretName",
            )
        log.info("issuing Certificate '%s/%s': %s", namespace, name, a.judgement.reason)
        a.failing_reason = "Issuing"  # a WaitingError (CA not there yet); Failed if permanent
        self.c.issue(a.cert, a.spec, a.issuer, a.now)
        a.revision = int(a.old.get("revision") or 0) + 1
        self.c.issued += 1
        a.secret = self.c.client.get("v1", "Secret", a.spec.secret_name, namespace)
        a.judgement = p.judge(a.secret, a.spec, a.now)
        self.c.event(
            a.cert,
            "Issuing",
            f"The certificate has been successfully issued (revision {a.revision}, {a.judgement.reason if not a.judgement.ok else 'Ready'})",
        )

    def _judge(self, a: _CertAttempt) -> float:
        judgement = a.judgement
        assert judgement is not None
        if judgement.info is None or judgement.renewal is None:
            a.failing_reason = judgement.reason
            raise WaitingError(f"Certificate {a.label}: {judgement.message}", retry_after=5)
        if not judgement.ok:
            raise WaitingError(judgement.message, retry_after=5)  # status says Ready False
        return max(1.0, (judgement.renewal - self.c.clock()).total_seconds())

    def finish(self, a: _CertAttempt, result: Result) -> Result:
        """Write status once: the judged certificate, or Ready False with the failing
        step's reason (and the earlier dates kept)."""
        old = a.old
        previous = old.get("conditions") or []
        generation = int(a.cert["metadata"].get("generation") or 0)
        judgement, error = a.judgement, result.error
        if error is not None and error_kind(error) is ErrorKind.TRANSIENT:
            return result  # an API hiccup says nothing about the certificate: retry quietly
        judged = (
            judgement is not None and judgement.info is not None and judgement.renewal is not None
        )
        if judged and (error is None or result.step == "judge"):
            assert (
                judgement is not None
                and judgement.info is not None
                and judgement.renewal is not None
            )
            status: dict[str, Any] = {
                "conditions": [
                    p.condition(
                        "Ready",
                        judgement.ok,
                        judgement.reason,
                        judgement.message,
                        a.now,
                        previous,
                        generation,
                    )
                ],
                "notBefore": p.format_time(judgement.info.not_before),
                "notAfter": p.format_time(judgement.info.not_after),
                "renewalTime": p.format_time(judgement.renewal),
                "revision": a.revision,
            }
        elif error is not None:
            reason = a.failing_reason
            if reason == "Issuing" and isinstance(error, PermanentError):
                reason = "Failed"
                self.c.event(a.cert, "Failed", str(error), warning=True)
            message = str(error)
            if judgement is not None and reason == judgement.reason:
                message = judgement.message
            status = {
                k: v
                for k, v in old.items()
                if k in ("revision", "notBefore", "notAfter", "renewalTime")
            }
            status["conditions"] = [
                p.condition("Ready", False, reason, message, a.now, previous, generation)
            ]
        else:
            return result
        a.status = status
        self.c.write_status(a.cert, status)
        return result


@dataclass
class _IssuerAttempt:
    """The subject of one Issuer or ClusterIssuer reconcile."""

    issuer: dict[str, Any]
    kind: str
    namespace: str
    now: dt.datetime
    ready: tuple[str, str] = ("", "")  # Ready=True's reason and message
    failing_reason: str = "InvalidConfig"  # Ready=False's if the current step fails


class IssuerReconciler(ObjectReconciler[_IssuerAttempt]):
    """Issuers and ClusterIssuers: spec -> CA (a CA issuer's key pair); Ready in `finish`."""

    def __init__(self, controller: CertsController) -> None:
        self.c = controller

    def load(self, key: QueueKey) -> _IssuerAttempt | None:
        kind, namespace, name = split_key(key)
        issuer = self.c.client.get(p.API_VERSION, kind, name, namespace or None)
        if issuer is None:
            return None
        return _IssuerAttempt(issuer, kind, namespace, self.c.clock())

    def steps(self, subject: _IssuerAttempt) -> Sequence[Step[_IssuerAttempt]]:
        return [("spec", self._spec), ("ca", self._ca)]

    def _spec(self, a: _IssuerAttempt) -> Stop | None:
        spec = a.issuer.get("spec") or {}
        if "ca" in spec:
            return None
        if "selfSigned" in spec:
            a.ready = ("IsReady", "")
            return STOP
        raise PermanentError("set spec.selfSigned or spec.ca")

    def _ca(self, a: _IssuerAttempt) -> None:
        a.failing_reason = "ErrGetKeyPair"  # a WaitingError: its Secret is not there yet
        self.c._load_ca(a.issuer, a.kind, a.namespace)
        a.ready = ("KeyPairVerified", "Signing CA verified")

    def finish(self, a: _IssuerAttempt, result: Result) -> Result:
        error = result.error
        if error is not None and error_kind(error) is ErrorKind.TRANSIENT:
            return result  # an API hiccup says nothing about the issuer: retry quietly
        previous = (a.issuer.get("status") or {}).get("conditions") or []
        generation = int(a.issuer["metadata"].get("generation") or 0)
        if error is None:
            reason, message = a.ready
            cond = p.condition("Ready", True, reason, message, a.now, previous, generation)
        else:
            reason = a.failing_reason
            if result.step == "ca" and isinstance(error, PermanentError):
                reason = "ErrInvalidKeyPair"
            cond = p.condition("Ready", False, reason, str(error), a.now, previous, generation)
        status = {"conditions": [cond]}
        if not p.status_equal(a.issuer.get("status") or {}, status):
            self.c.client.apply_status(self.c._status_patch(a.issuer, status), p.FIELD_MANAGER)
        # A stalled issuer heals by an edit of it or of its CA Secret (both watched).
        return replace(result, retry_stalled=False, logged=True)


@dataclass
class _IngressAttempt:
    """The subject of one Ingress reconcile: the Certificates it asks for."""

    ingress: dict[str, Any]
    namespace: str
    name: str
    issuer: tuple[str, str] = ("", "")  # (kind, name) from its annotations
    desired: dict[str, list[str]] = field(default_factory=dict)  # secretName -> hosts

    @property
    def owner(self) -> dict[str, Any]:
        return {
            "apiVersion": INGRESS_API,
            "kind": "Ingress",
            "name": self.name,
            "uid": self.ingress["metadata"]["uid"],
            "controller": True,
        }


class IngressReconciler(ObjectReconciler[_IngressAttempt]):
    """The ingress shim: issuer annotation -> a Certificate per spec.tls[] entry -> prune
    the Certificates it owned for entries that are gone."""

    def __init__(self, controller: CertsController) -> None:
        self.c = controller

    def load(self, key: QueueKey) -> _IngressAttempt | None:
        _, namespace, name = split_key(key)
        ingress = self.c.runtime.informer("Ingress").get_named(namespace, name)
        if ingress is None:
            return None  # the garbage collector removes Certificates it owned
        return _IngressAttempt(ingress, namespace, name)

    def steps(self, subject: _IngressAttempt) -> Sequence[Step[_IngressAttempt]]:
        return [
            ("issuer", self._issuer),
            ("certificates", self._certificates),
            ("prune", self._prune),
        ]

    def _issuer(self, a: _IngressAttempt) -> Stop | None:
        annotations = a.ingress["metadata"].get("annotations") or {}
        if p.INGRESS_CLUSTER_ISSUER in annotations:
            a.issuer = ("ClusterIssuer", annotations[p.INGRESS_CLUSTER_ISSUER])
        elif p.INGRESS_ISSUER in annotations:
            a.issuer = ("Issuer", annotations[p.INGRESS_ISSUER])
        else:
            return STOP  # not ours
        for tls in (a.ingress.get("spec") or {}).get("tls") or []:
            secret_name, hosts = tls.get("secretName"), tls.get("hosts") or []
            if not secret_name or not hosts:
                log.warning(
                    "Ingress '%s/%s': a spec.tls entry without secretName or hosts is skipped",
                    a.namespace,
                    a.name,
                )
                continue
            a.desired.setdefault(str(secret_name), []).extend(str(h) for h in hosts)
        return None

    def _certificates(self, a: _IngressAttempt) -> None:
        annotations = a.ingress["metadata"].get("annotations") or {}
        kind, issuer_name = a.issuer
        owner = a.owner
        certificates = self.c.runtime.informer("Certificate")
        for secret_name, hosts in a.desired.items():
            existing = certificates.get_named(a.namespace, secret_name)
            if existing is not None and not any(
                ref.get("uid") == owner["uid"]
                for ref in existing["metadata"].get("ownerReferences") or []
            ):
                self.c.event(
                    a.ingress,
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
            self.c.client.apply(
                {
                    "apiVersion": p.API_VERSION,
                    "kind": "Certificate",
                    "metadata": {
                        "name": secret_name,
                        "namespace": a.namespace,
                        "ownerReferences": [owner],
                    },
                    "spec": spec,
                },
                p.FIELD_MANAGER,
            )

    def _prune(self, a: _IngressAttempt) -> None:
        uid = a.owner["uid"]
        for cert in self.c.runtime.informer("Certificate").items():
            meta = cert["metadata"]
            if meta.get("namespace") != a.namespace or meta["name"] in a.desired:
                continue
            if any(ref.get("uid") == uid for ref in meta.get("ownerReferences") or []):
                try:
                    self.c.client.delete(p.API_VERSION, "Certificate", meta["name"], a.namespace)
                except PlatformError as error:
                    log.warning(
                        "failed to delete Certificate '%s/%s': %s", a.namespace, meta["name"], error
                    )

    def finish(self, a: _IngressAttempt, result: Result) -> Result:
        return result  # an Ingress carries no status of ours; the Runtime requeues errors


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
        self.certificates = CertificateReconciler(self)
        self.issuers = IssuerReconciler(self)
        self.ingresses = IngressReconciler(self)
        ns = options.watch_namespace
        self.runtime = Runtime(
            name="certs",
            client=client,
            reconcile=self.reconcile,
            workers=options.workers,
            watches=[
                Watch(p.API_VERSION, "Certificate", kind_key("Certificate"), namespace=ns),
                Watch(p.API_VERSION, "Issuer", self._issuer_keys("Issuer"), namespace=ns),
                Watch(p.API_VERSION, "ClusterIssuer", self._issuer_keys("ClusterIssuer")),
                Watch(INGRESS_API, "Ingress", kind_key("Ingress"), namespace=ns),
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

    def _issuer_keys(self, kind: str) -> Callable[[WatchEvent], list[QueueKey]]:
        def to_keys(event: WatchEvent) -> list[QueueKey]:
            meta = event.object.get("metadata") or {}
            name, namespace = str(meta.get("name", "")), str(meta.get("namespace") or "")
            keys: list[QueueKey] = [(kind, namespace, name)]
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

    def _ca_secret_keys(self, event: WatchEvent) -> list[QueueKey]:
        """The ClusterIssuers (and Issuers of that namespace) whose CA is this Secret."""
        meta = event.object.get("metadata") or {}
        name, namespace = meta.get("name"), str(meta.get("namespace") or "")
        keys: list[QueueKey] = []
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
    def _secret_keys(event: WatchEvent) -> list[QueueKey]:
        meta = event.object.get("metadata") or {}
        owner = (meta.get("annotations") or {}).get(p.CERT_NAME)
        return [("Certificate", str(meta.get("namespace") or ""), str(owner))] if owner else []

    # ---- dispatch ----------------------------------------------------------------------

    def reconcile(self, key: QueueKey) -> Result | float | None:
        kind, _, _ = split_key(key)
        if kind == "Certificate":
            return self.certificates.reconcile(key)
        if kind in ("Issuer", "ClusterIssuer"):
            return self.issuers.reconcile(key)
        if kind == "Ingress":
            return self.ingresses.reconcile(key)
        return None

    def event(self, obj: dict[str, Any], reason: str, message: str, warning: bool = False) -> None:
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

    def write_status(self, cert: dict[str, Any], status: dict[str, Any]) -> None:
        if not p.status_equal(cert.get("status") or {}, status):
            self.client.apply_status(self._status_patch(cert, status), p.FIELD_MANAGER)

    def issue(
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
