"""Stage 5, `reconciler`: install the GitOps reconciler and hand it the root Application.

Installs the CRD, RBAC, Deployment and Service (stacks.reconciler.install), with two
Secrets it mounts: the push webhook's HMAC key (generated once, kept 0600 in the state
dir, shared with the git server) and the read-only git credentials. Then it creates the
app-of-apps root, `root`, which syncs registry/<cluster> of the seeded repository: from
here on everything, the reconciler itself included, is delivered from git.

`remove` (for `platform down` with the existing engine) deletes every object the
Applications manage (from their recorded inventories), the Applications, and then what
the install applied, so the cluster is left as it was found.

With an offline bundle recorded (`platform up --images FILE`), `run` first preloads the
charts beside it as ConfigMaps (`preload_charts`), so charts sync without a network.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bootstrap.images import COMPONENT_IMAGE
from bootstrap.stages.base import CheckResult, StageContext, wait_namespaces_gone
from stacks import redact
from stacks.errors import PlatformError
from stacks.kube.objects import ObjectRef
from stacks.reconciler import install
from stacks.reconciler.api import API_VERSION, FINALIZER, KIND
from stacks.reconciler.sources.preload import chart_configmap
from stacks.reconciler.status import InventoryUnreadable, read_inventory

ROOT_APP = "root"
WEBHOOK_SECRET_FILE = "reconciler-webhook-secret"  # noqa: S105 - a file name


def webhook_secret(ctx: StageContext) -> str:
    """The HMAC key for push webhooks, generated once per platform."""
    value = ctx.state.read_secret(WEBHOOK_SECRET_FILE)
    if not value:
        value = secrets.token_hex(32)
        ctx.state.write_secret(WEBHOOK_SECRET_FILE, value)
    redact.register(value)
    return value.strip()


def root_path(ctx: StageContext) -> str:
    return f"registry/{ctx.settings.name}"


class ReconcilerStage:
    name = "reconciler"
    description = "install the GitOps reconciler and the root Application"
    requires: tuple[str, ...] = ("seed",)

    def timeout(self, ctx: StageContext) -> float:
        return ctx.settings.stage_timeout

    def check(self, ctx: StageContext) -> CheckResult:
        client = ctx.kube()
        try:
            install.wait_ready(client, timeout=0.1)
        except PlatformError as error:
            return CheckResult(False, str(error))
        if client.get(API_VERSION, KIND, ROOT_APP, install.NAMESPACE) is None:
            return CheckResult(False, "the root Application is missing")
        return CheckResult(True, "reconciler running; root Application present")

    def plan(self, ctx: StageContext) -> list[str]:
        return [
            f"apply the reconciler ({COMPONENT_IMAGE}) into namespace {install.NAMESPACE}",
            f"create Application {ROOT_APP} for {root_path(ctx)}",
        ]

    def run(self, ctx: StageContext) -> str:
        from bootstrap.gitops.source import cluster_git_source

        client = ctx.kube()
        source = cluster_git_source(ctx.settings, ctx.state)
        ctx.progress.step(self.name, "applying the reconciler")
        install.install(
            client,
            COMPONENT_IMAGE,
            webhook_secret=webhook_secret(ctx),
            git_credentials=install.git_credentials_line(
                source.base_url, source.readonly_username, source.readonly_password
            ),
        )
        preloaded = preload_charts(
            ctx, client, lambda problem: ctx.progress.warn(self.name, problem)
        )
        if preloaded:
            ctx.progress.step(self.name, f"preloaded {preloaded} charts from the offline bundle")
        deadline = time.monotonic() + self.timeout(ctx)
        while True:
            try:
                install.wait_ready(client, timeout=5.0)
                break
            except PlatformError as error:
                if time.monotonic() > deadline:
                    raise
                ctx.progress.step(self.name, str(error))
                ctx.checkpoint()
        root = install.root_application(ROOT_APP, source.repo_url, root_path(ctx))
        client.apply(root, install.FIELD_MANAGER_BOOTSTRAP)
        return f"reconciler ready; Application {ROOT_APP} follows {root_path(ctx)}"

    def remove(self, ctx: StageContext) -> str:
        client = ctx.kube()
        try:
            apps = client.list_objects(API_VERSION, KIND)
        except PlatformError:
            apps = []  # the CRD is gone already: nothing is managed
        # Stop the in-cluster reconciler first, or it would put back what we delete.
        client.delete("apps/v1", "Deployment", install.NAME, install.NAMESPACE)
        managed = managed_objects(apps, lambda problem: ctx.progress.warn(self.name, problem))
        # Namespaced objects first, cluster-scoped ones (namespaces, CRDs) last.
        for ref in sorted(managed, key=lambda r: r.namespace == ""):
            if ref.kind == KIND:
                continue
            _delete_quietly(client, ref)
        for app in apps:
            meta = app["metadata"]
            if FINALIZER in (meta.get("finalizers") or []):
                client.merge_patch(
                    API_VERSION,
                    KIND,
                    meta["name"],
                    {"metadata": {"finalizers": None}},
                    meta["namespace"],
                )
            client.delete(API_VERSION, KIND, meta["name"], meta["namespace"])
        installed = [ObjectRef.of(obj) for obj in install.manifests(COMPONENT_IMAGE)]
        for ref in reversed(installed):
            _delete_quietly(client, ref)
        wait_namespaces_gone(
            ctx, [r.name for r in managed + installed if r.kind == "Namespace" and r.group == ""]
        )
        return f"deleted {len(managed)} objects managed by {len(apps)} Applications, and the reconciler"


def preload_charts(ctx: StageContext, client: Any, warn: Callable[[str], None]) -> int:
    """The offline bundle's charts (recorded by `up --images`) as ConfigMaps in the
    reconciler's namespace, where its ChartCache looks before the network. Server-side
    apply, so a re-run changes nothing; a chart too big for a ConfigMap is warned about
    and left out (its Application then needs the repository). The number applied."""
    from bootstrap.docker.bundle import recorded_charts

    path = recorded_charts(ctx.state)
    return 0 if path is None else apply_chart_bundle(client, path, warn)


def apply_chart_bundle(client: Any, path: Path, warn: Callable[[str], None]) -> int:
    """Each chart of the bundle tar `path` as a ConfigMap (see preload_charts)."""
    from bootstrap.docker.charts_bundle import read_charts

    applied = 0
    for chart in read_charts(path):
        try:
            obj = chart_configmap(
                chart.repo, chart.chart, chart.version, chart.sha256, chart.data, install.NAMESPACE
            )
        except PlatformError as error:
            warn(str(error))
            continue
        client.apply(obj, install.FIELD_MANAGER_BOOTSTRAP)
        applied += 1
    return applied


def managed_objects(apps: list[dict[str, Any]], warn: Callable[[str], None]) -> list[ObjectRef]:
    """Every object the Applications' inventories list, in either form the reconciler
    writes (the plain list, or gzip'd beyond 200 objects). An inventory that cannot be
    read is warned about and skipped: down goes on, and the namespaces it deletes take
    most objects with them."""
    managed: list[ObjectRef] = []
    for app in apps:
        try:
            entries = read_inventory(app.get("status") or {})
        except InventoryUnreadable as error:
            warn(f"Application {app['metadata']['name']}: {error}")
            continue
        managed.extend(entry.ref for entry in entries)
    return managed


def _delete_quietly(client: Any, ref: ObjectRef) -> None:
    # A kind whose CRD went first has no objects left to delete.
    with contextlib.suppress(PlatformError):
        client.delete_ref(ref)
