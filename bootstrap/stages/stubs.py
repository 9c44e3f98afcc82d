"""Stages 8-10, `secrets`, `certs`, `dns`: the three stubs, delivered from the repo.

The controllers, their CRDs and their configuration (the ClusterSecretStore, the
ClusterIssuer, the DNS settings) are Applications in the GitOps repository; these stages
only do what must not live in git and then wait for the Applications:

    certs    create the platform's CA once: its key only in the Secret
             platform-certs/platform-ca, its certificate exported to
             ~/.platform/<name>/ca.crt (trust it with your OS to get no TLS warnings)
    secrets  wait until the ClusterSecretStore `vault` is Ready (Vault reachable, the
             Kubernetes auth role working)
    dns      wait until the DNS stub is delivered

Called through bootstrap.stages.registry.
"""

from __future__ import annotations

import base64
import datetime as dt

from bootstrap.stages.appwait import AppsReadyStage
from bootstrap.stages.base import StageContext, wait_namespaces_gone
from stacks import redact
from stacks.certs import pki
from stacks.kube.objects import condition_of

CA_NAMESPACE = "platform-certs"
CA_SECRET = "platform-ca"  # noqa: S105 - a Secret name
CLUSTER_ISSUER = "platform-ca"
SECRET_STORE = "vault"  # noqa: S105 - a store name
FIELD_MANAGER = "platform-bootstrap"
LABELS = {"app.kubernetes.io/part-of": "platform"}


def ensure_ca(ctx: StageContext) -> str:
    """The CA Secret (created once, never replaced) and its certificate on disk."""
    client = ctx.kube()
    secret = client.get("v1", "Secret", CA_SECRET, CA_NAMESPACE)
    created = secret is None
    if secret is None:
        ctx.progress.step("certs", "creating the platform's certificate authority")
        pair = pki.create_ca(f"platform {ctx.settings.name} CA", dt.datetime.now(dt.UTC))
        redact.register(pair.key_pem.decode())
        client.apply(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": CA_NAMESPACE, "labels": LABELS},
            },
            FIELD_MANAGER,
        )
        secret = client.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "kubernetes.io/tls",
                "metadata": {"name": CA_SECRET, "namespace": CA_NAMESPACE, "labels": LABELS},
                "data": {
                    "tls.crt": base64.b64encode(pair.cert_pem).decode(),
                    "tls.key": base64.b64encode(pair.key_pem).decode(),
                },
            },
            FIELD_MANAGER,
        )
    cert_pem = base64.b64decode(secret.get("data", {}).get("tls.crt", ""))
    path = ctx.state.root / "ca.crt"
    if not path.exists() or path.read_bytes() != cert_pem:
        path.write_bytes(cert_pem)  # a certificate is public; the key stays in the Secret
    ctx.state.set_output("ca_certificate", str(path))
    return f"{'created' if created else 'kept'} the platform CA ({path})"


def remove_ca(ctx: StageContext) -> str:
    if ctx.kube().delete("v1", "Namespace", CA_NAMESPACE):
        wait_namespaces_gone(ctx, [CA_NAMESPACE])
        return f"deleted namespace {CA_NAMESPACE} (the platform CA)"
    return ""


def _ready_problem(ctx: StageContext, api_version: str, kind: str, name: str) -> str:
    obj = ctx.kube().get(api_version, kind, name)
    if obj is None:
        return f"{kind} {name} does not exist yet"
    ready = condition_of(obj, "Ready") or {}
    if ready.get("status") == "True":
        return ""
    return (
        f"{kind} {name} is not Ready: {ready.get('reason', '')} {ready.get('message', '')}".strip()
    )


def secrets_stage() -> AppsReadyStage:
    return AppsReadyStage(
        name="secrets",
        description="secrets syncer and the Vault ClusterSecretStore, from git",
        apps=("secrets", "secrets-config"),
        requires=("reconciler", "terraform"),
        ready_check=lambda ctx: _ready_problem(
            ctx, "secrets.platform.local/v1", "ClusterSecretStore", SECRET_STORE
        ),
    )


def certs_stage() -> AppsReadyStage:
    return AppsReadyStage(
        name="certs",
        description="local CA and certificate stub, from git",
        apps=("certs", "certs-config"),
        prepare=ensure_ca,
        cleanup=remove_ca,
        ready_check=lambda ctx: _ready_problem(
            ctx, "certs.platform.local/v1", "ClusterIssuer", CLUSTER_ISSUER
        ),
    )


def release_dns_entries(ctx: StageContext) -> str:
    """The DNS stub's entries out of `kube-system/coredns-custom` (and the ConfigMap, if
    the stub created it), once the stub has stopped with the rest of the platform."""
    from stacks.dns.controller import CONFIGMAP_NAME, CONFIGMAP_NAMESPACE, Options
    from stacks.dns.release import release

    return release(ctx.kube(), CONFIGMAP_NAMESPACE, CONFIGMAP_NAME, Options().owner_id)


def dns_stage() -> AppsReadyStage:
    return AppsReadyStage(
        name="dns",
        description="DNS stub (ingress hosts in CoreDNS), from git",
        apps=("dns",),
        leftovers=release_dns_entries,
    )
