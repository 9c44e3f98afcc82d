"""Install the reconciler into a cluster and create the root Application: what the
bootstrap `reconciler` stage calls (and nothing it needs to know about manifests).

    objects = manifests(image)                      CRD, namespace, RBAC, Deployment, Service
    install(client, image, webhook_secret=..., git_credentials=...)   apply them (idempotent)
    wait_ready(client, timeout)                     CRD Established and Deployment available
    root = root_application("root", repo_url, "registry/local")
    client.apply(root, FIELD_MANAGER_BOOTSTRAP)     hand the rest over to GitOps

Secrets (the webhook HMAC key, the read-only git credentials) are created as Secrets
mounted by the Deployment; their values never appear in logs or messages.
"""

from __future__ import annotations

import base64
import time
from typing import Any, Protocol

from stacks.errors import WaitingError
from stacks.kube.diagnose import with_cause
from stacks.kube.health import health_of
from stacks.kube.objects import KubeObject, ObjectReader, ObjectRef
from stacks.kube.waits import wait_crds_established
from stacks.manifests import component_manifests
from stacks.reconciler.api import API_VERSION, FINALIZER, KIND
from stacks.reconciler.apply import ApplyClient
from stacks.reconciler.plan import kind_rank

NAMESPACE = "platform-system"
NAME = "platform-reconciler"
FIELD_MANAGER_BOOTSTRAP = "platform-bootstrap"
WEBHOOK_SECRET = "platform-reconciler-webhook"  # noqa: S105 - a Secret name; key `secret`
GIT_SECRET = "platform-reconciler-git"  # noqa: S105 - a Secret name; key `credentials`
WEBHOOK_URL = f"http://{NAME}.{NAMESPACE}.svc/webhook"  # for the git server


class InstallClient(ApplyClient, ObjectReader, Protocol):
    """What the installer needs: the applier's calls, and reads to explain a slow start."""


def manifests(image: str) -> list[KubeObject]:
    """Every object of manifests/, the image placeholder replaced, in install order."""
    objects = component_manifests("reconciler", {"COMPONENT_IMAGE": image})
    return sorted(objects, key=lambda o: kind_rank(str(o["kind"])))


def _secret(name: str, key: str, value: str) -> KubeObject:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "labels": {"app.kubernetes.io/part-of": "platform"},
        },
        "type": "Opaque",
        "data": {key: base64.b64encode(value.encode()).decode()},
    }


def git_credentials_line(url: str, username: str, password: str) -> str:
    """One git-credentials line for the git server's base URL (e.g. http://host:port)."""
    from urllib.parse import quote, urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{quote(username, safe='')}:{quote(password, safe='')}@{parts.netloc}{parts.path.rstrip('/')}\n"


def install(
    client: InstallClient,
    image: str,
    webhook_secret: str = "",
    git_credentials: str = "",
    field_manager: str = FIELD_MANAGER_BOOTSTRAP,
) -> list[ObjectRef]:
    """Apply the reconciler (idempotent); returns what was applied."""
    applied: list[ObjectRef] = []
    objects = manifests(image)
    secrets = []
    if webhook_secret:
        secrets.append(_secret(WEBHOOK_SECRET, "secret", webhook_secret))
    if git_credentials:
        secrets.append(_secret(GIT_SECRET, "credentials", git_credentials))
    for obj in objects[:1] + secrets + objects[1:]:  # the Namespace first
        client.apply(obj, field_manager, force=True)
        applied.append(ObjectRef.of(obj))
        if obj["kind"] == "CustomResourceDefinition":
            wait_crds_established(client, [str(obj["metadata"]["name"])], 60.0)
    return applied


def wait_ready(client: InstallClient, timeout: float = 180.0) -> None:
    """Until the reconciler's Deployment is Healthy; WaitingError with its state otherwise."""
    deadline = time.monotonic() + timeout
    message = "not created"
    live = None
    while time.monotonic() < deadline:
        live = client.get("apps/v1", "Deployment", NAME, NAMESPACE)
        if live is not None:
            health = health_of(live)
            if health is not None and health.healthy:
                return
            message = health.message if health else "unknown"
        time.sleep(1.0)
    raise WaitingError(
        with_cause(
            f"the reconciler Deployment is not ready after {timeout:.0f}s: {message}", client, live
        ),
        retry_after=10,
    )


def root_application(
    name: str,
    repo_url: str,
    path: str,
    namespace: str = NAMESPACE,
    target_revision: str = "HEAD",
    secret_name: str = "",
    cascade: bool = False,
    interval: str = "3m",
) -> KubeObject:
    """The app-of-apps root: it syncs `path` (which holds Applications) with prune and selfHeal."""
    source: dict[str, Any] = {"repoURL": repo_url, "path": path, "targetRevision": target_revision}
    if secret_name:
        source["secretRef"] = {"name": secret_name}
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": {"app.kubernetes.io/part-of": "platform"},
    }
    if cascade:
        metadata["finalizers"] = [FINALIZER]
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": metadata,
        "spec": {
            "project": "platform",  # the root delivers Applications into platform-system
            "source": source,
            "destination": {"namespace": namespace},
            "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
            "interval": interval,
        },
    }
