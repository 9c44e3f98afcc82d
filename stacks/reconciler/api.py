"""The Application API: names, annotations and a typed view of an Application's spec.

`AppSpec.parse(obj)` reads a raw Application into a frozen value (defaults applied,
errors named by field). Pure, no I/O. Used by every reconciler module and the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stacks.errors import PermanentError
from stacks.kube.durations import parse_seconds
from stacks.kube.objects import KubeObject
from stacks.reconciler.ignore import IgnoreRule, parse_rules
from stacks.reconciler.retry import RetryPolicy
from stacks.reconciler.source import clean_path
from stacks.reconciler.sources.spec import (
    HelmOptions,
    KustomizeOptions,
    parse_chart,
    parse_helm,
    parse_kustomize,
)

GROUP = "gitops.platform.local"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "Application"
FIELD_MANAGER = "platform-reconciler"

SYNC_WAVE = f"{GROUP}/sync-wave"
REFRESH = f"{GROUP}/refresh"  # any new value asks for a sync now (platform sync APP)
ALLOW_MASS_PRUNE = f"{GROUP}/allow-mass-prune"  # "true" or the revision allowed to prune
PRUNE = f"{GROUP}/prune"  # on an object: "false" never prune; "true" allows PVC/Namespace
TRACKING = f"{GROUP}/tracking-id"  # on managed objects: <app-ns>/<app>:<group>/<kind>:<ns>/<name>
MANAGED_LABEL = (
    f"{GROUP}/managed"  # "true" on managed objects: watch filter only, never prune source
)
IGNORE_HEALTH = f"{GROUP}/ignore-healthcheck"
FINALIZER = f"resources-finalizer.{GROUP}"

DEFAULT_INTERVAL = 180.0
DEFAULT_WAVE_TIMEOUT = 300.0


def parse_duration(text: str, default: float) -> float:
    """A spec field's Go duration ("90s", "3m", "1h30m", "500ms"; a bare number is
    seconds), `default` when empty; ValueError otherwise (stacks/kube/durations.py)."""
    text = (text or "").strip()
    if not text:
        return default
    return parse_seconds(text, bare_seconds=True)


@dataclass(frozen=True)
class AppKey:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"

    @classmethod
    def of(cls, obj: KubeObject) -> AppKey:
        meta = obj.get("metadata") or {}
        return cls(str(meta.get("namespace") or ""), str(meta.get("name", "")))

    @classmethod
    def parse(cls, text: str) -> AppKey:
        namespace, _, name = text.partition("/")
        return cls(namespace, name)


@dataclass(frozen=True)
class Source:
    repo_url: str
    path: str
    target_revision: str = "HEAD"
    recurse: bool = False
    secret_name: str = ""  # Secret in the Application's namespace: username, password
    # Helm and Kustomize (issue 18; stacks/reconciler/sources/): a chart's name in a Helm
    # repository or OCI registry, and Argo CD's source.helm / source.kustomize fields.
    chart: str = ""
    helm: HelmOptions | None = None
    kustomize: KustomizeOptions | None = None


@dataclass(frozen=True)
class AppSpec:
    key: AppKey
    source: Source
    namespace: str  # destination.namespace ("" = objects must name theirs)
    prune: bool = False
    self_heal: bool = False
    allow_empty: bool = False
    automated: bool = False
    create_namespace: bool = False
    depends_on: tuple[AppKey, ...] = ()
    interval: float = DEFAULT_INTERVAL
    wave_timeout: float = DEFAULT_WAVE_TIMEOUT
    generation: int = 0
    refresh: str = ""
    allow_mass_prune: str = ""
    deleting: bool = False
    cascade: bool = False
    sync_options: tuple[str, ...] = field(default=())
    # syncPolicy.retry (retry.py) and spec.ignoreDifferences (ignore.py): issue 21
    retry: RetryPolicy | None = None
    ignore_differences: tuple[IgnoreRule, ...] = ()

    @classmethod
    def parse(cls, obj: KubeObject) -> AppSpec:
        key = AppKey.of(obj)
        meta = obj.get("metadata") or {}
        spec: dict[str, Any] = obj.get("spec") or {}
        src = spec.get("source") or {}
        if not src.get("repoURL"):
            raise PermanentError(
                f"Application '{key}' has no spec.source.repoURL",
                hint="set spec.source.repoURL to the git repository to deliver from",
            )
        policy = spec.get("syncPolicy") or {}
        auto = policy.get("automated")
        options = tuple(str(o) for o in policy.get("syncOptions") or [])
        deps = []
        for dep in spec.get("dependsOn") or []:
            deps.append(
                AppKey(str(dep.get("namespace") or key.namespace), str(dep.get("name", "")))
            )
        try:
            interval = parse_duration(str(spec.get("interval") or ""), DEFAULT_INTERVAL)
            wave_timeout = parse_duration(str(spec.get("timeout") or ""), DEFAULT_WAVE_TIMEOUT)
        except ValueError as error:
            raise PermanentError(
                f"Application '{key}': {error}", hint='use durations such as "30s", "3m" or "1h"'
            ) from error
        annotations = meta.get("annotations") or {}
        secret = (src.get("secretRef") or {}).get("name", "")
        return cls(
            key=key,
            source=Source(
                repo_url=str(src["repoURL"]),
                path=_path(key, src.get("path")),
                target_revision=str(src.get("targetRevision") or "HEAD"),
                recurse=bool((src.get("directory") or {}).get("recurse", False)),
                secret_name=str(secret),
                **_tools(key, src),
            ),
            namespace=str((spec.get("destination") or {}).get("namespace") or ""),
            automated=auto is not None and (auto or {}).get("enabled", True) is not False,
            prune=bool((auto or {}).get("prune", False)),
            self_heal=bool((auto or {}).get("selfHeal", False)),
            allow_empty=bool((auto or {}).get("allowEmpty", False)),
            create_namespace="CreateNamespace=true" in options,
            depends_on=tuple(deps),
            interval=max(interval, 1.0),
            wave_timeout=max(wave_timeout, 1.0),
            generation=int(meta.get("generation") or 0),
            refresh=str(annotations.get(REFRESH, "")),
            allow_mass_prune=str(annotations.get(ALLOW_MASS_PRUNE, "")),
            deleting=bool(meta.get("deletionTimestamp")),
            cascade=FINALIZER in (meta.get("finalizers") or []),
            sync_options=options,
            **_sync_extras(key, spec, policy),
        )


def _tools(key: AppKey, src: dict[str, Any]) -> dict[str, Any]:
    """source.chart, source.helm and source.kustomize, parsed (sources/spec.py)."""
    try:
        return {
            "chart": parse_chart(src.get("chart")),
            "helm": parse_helm(src.get("helm")),
            "kustomize": parse_kustomize(src.get("kustomize")),
        }
    except PermanentError as error:
        raise PermanentError(f"Application '{key}': {error}", hint=error.hint) from error


def _sync_extras(key: AppKey, spec: dict[str, Any], policy: dict[str, Any]) -> dict[str, Any]:
    """syncPolicy.retry and spec.ignoreDifferences, parsed (retry.py, ignore.py)."""
    try:
        return {
            "retry": RetryPolicy.parse(policy.get("retry")),
            "ignore_differences": parse_rules(spec.get("ignoreDifferences")),
        }
    except ValueError as error:
        raise PermanentError(
            f"Application '{key}': {error}",
            hint="see Argo CD's syncPolicy.retry and ignoreDifferences fields",
        ) from error


def _path(key: AppKey, value: Any) -> str:
    try:
        return clean_path(str(value or "."))
    except PermanentError as error:
        raise PermanentError(f"Application '{key}': {error}", hint=error.hint) from error


def tracking_id(app: AppKey, group: str, kind: str, namespace: str, name: str) -> str:
    return f"{app.namespace}/{app.name}:{group}/{kind}:{namespace}/{name}"


def owner_of_tracking(value: str) -> AppKey | None:
    head, sep, _ = value.partition(":")
    if not sep or "/" not in head:
        return None
    return AppKey.parse(head)
