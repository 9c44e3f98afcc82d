"""AppProjects: who may deploy what, as whom. Pure, no I/O.

An `AppProject` (gitops.platform.local/v1alpha1, in the reconciler's own namespace)
carries Argo CD's field names and meanings (argo-cd pkg/apis/application/v1alpha1
AppProject, `IsSourcePermitted`, `IsDestinationPermitted`, `IsGroupKindPermitted`):

    sourceRepos                 globs of repository URLs; "!glob" refuses
    destinations[]              {server, namespace}: globs; a "!glob" entry refuses
    clusterResourceWhitelist    cluster-scoped kinds allowed; absent or [] = none
    clusterResourceBlacklist    cluster-scoped kinds refused
    namespaceResourceWhitelist  namespaced kinds allowed; absent = all, [] = none
    namespaceResourceBlacklist  namespaced kinds refused
    sourceNamespaces            namespaces whose Applications may use the project; an
                                Application in the reconciler's own namespace may use any
    destinationServiceAccounts  Argo CD 2.13: [{server, namespace, defaultServiceAccount}],
                                the first entry matching the destination names the
                                ServiceAccount ("name" in the destination namespace, or
                                "namespace:name") that applies and prunes

Kinds are `{group, kind}` with '*' globs ("" is the core group). Only the project
`platform` applies as the reconciler itself; every other project must name a
ServiceAccount, which the reconciler impersonates (Flux's model), so the API server's
RBAC enforces the limits a second time.

`evaluate(project, app, refs, control_namespace)` returns a `Verdict`: every refusal
(object, rule, how to allow it) and the user to impersonate. Called by policy.py (the
reconciler's policy step) and by the unit tests.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from stacks.errors import PermanentError
from stacks.kube.objects import KubeObject, ObjectRef
from stacks.reconciler.api import GROUP, VERSION

PROJECT_KIND = "AppProject"
PROJECT_API_VERSION = f"{GROUP}/{VERSION}"
PLATFORM_PROJECT = "platform"  # the only project that applies as the reconciler itself
DEFAULT_PROJECT = "default"  # an Application without spec.project
IN_CLUSTER = "https://kubernetes.default.svc"

# Hostile input is bounded: a project is read at every reconcile of its Applications.
MAX_ENTRIES = 256
MAX_TEXT = 512
MAX_REFUSALS_SHOWN = 5


def _glob(pattern: str, value: str) -> bool:
    """Argo CD's globMatch: '*', '?', '[...]'; a leading '!' negates."""
    if pattern.startswith("!"):
        return not fnmatch.fnmatchcase(value, pattern[1:])
    return fnmatch.fnmatchcase(value, pattern)


def _deny(pattern: str) -> bool:
    return pattern.startswith("!")


@dataclass(frozen=True)
class GroupKind:
    group: str
    kind: str

    def matches(self, group: str, kind: str) -> bool:
        return fnmatch.fnmatchcase(group, self.group) and fnmatch.fnmatchcase(kind, self.kind)

    def __str__(self) -> str:
        return f"{{group: '{self.group}', kind: {self.kind}}}"


@dataclass(frozen=True)
class Destination:
    server: str
    namespace: str


@dataclass(frozen=True)
class ServiceAccountRule:
    server: str
    namespace: str
    service_account: str  # "name" (in the destination namespace) or "namespace:name"


@dataclass(frozen=True)
class Project:
    name: str
    source_repos: tuple[str, ...] = ()
    destinations: tuple[Destination, ...] = ()
    cluster_whitelist: tuple[GroupKind, ...] = ()
    cluster_blacklist: tuple[GroupKind, ...] = ()
    namespace_whitelist: tuple[GroupKind, ...] | None = None  # None: every namespaced kind
    namespace_blacklist: tuple[GroupKind, ...] = ()
    source_namespaces: tuple[str, ...] = ()
    service_accounts: tuple[ServiceAccountRule, ...] = ()

    @classmethod
    def parse(cls, obj: KubeObject) -> Project:
        """The project's spec; PermanentError naming the field when it is malformed."""
        name = str((obj.get("metadata") or {}).get("name") or "")
        spec = obj.get("spec") or {}
        if not isinstance(spec, dict):
            raise _invalid(name, "spec", "must be an object")
        whitelist = spec.get("namespaceResourceWhitelist")
        return cls(
            name=name,
            source_repos=_strings(name, spec, "sourceRepos"),
            destinations=tuple(
                Destination(_text(name, d, "server", "*"), _text(name, d, "namespace", ""))
                for d in _objects(name, spec, "destinations")
            ),
            cluster_whitelist=_kinds(name, spec, "clusterResourceWhitelist"),
            cluster_blacklist=_kinds(name, spec, "clusterResourceBlacklist"),
            namespace_whitelist=None
            if whitelist is None
            else _kinds(name, spec, "namespaceResourceWhitelist"),
            namespace_blacklist=_kinds(name, spec, "namespaceResourceBlacklist"),
            source_namespaces=_strings(name, spec, "sourceNamespaces"),
            service_accounts=tuple(
                ServiceAccountRule(
                    _text(name, d, "server", "*"),
                    _text(name, d, "namespace", ""),
                    _text(name, d, "defaultServiceAccount", ""),
                )
                for d in _objects(name, spec, "destinationServiceAccounts")
            ),
        )

    # ---- Argo CD's checks ------------------------------------------------------------

    def repo_permitted(self, url: str) -> bool:
        allowed = False
        for pattern in self.source_repos:
            if _glob(pattern, url):
                allowed = allowed or not _deny(pattern)
            elif _deny(pattern):
                return False
        return allowed

    def destination_permitted(self, server: str, namespace: str) -> bool:
        allowed = False
        for item in self.destinations:
            server_ok = _glob(item.server or "*", server)
            namespace_ok = _glob(item.namespace, namespace)
            if server_ok and namespace_ok:
                allowed = True
            elif (not server_ok and _deny(item.server)) or (
                not namespace_ok and _deny(item.namespace)
            ):
                return False
        return allowed

    def kind_permitted(self, group: str, kind: str, namespaced: bool) -> bool:
        if namespaced:
            listed = self.namespace_whitelist is None or any(
                k.matches(group, kind) for k in self.namespace_whitelist
            )
            return listed and not any(k.matches(group, kind) for k in self.namespace_blacklist)
        listed = any(k.matches(group, kind) for k in self.cluster_whitelist)
        return listed and not any(k.matches(group, kind) for k in self.cluster_blacklist)

    def usable_from(self, app_namespace: str, control_namespace: str) -> bool:
        return app_namespace == control_namespace or any(
            _glob(p, app_namespace) for p in self.source_namespaces
        )

    def service_account(self, server: str, namespace: str) -> tuple[str, str] | None:
        """(namespace, name) of the ServiceAccount that applies for this destination."""
        for rule in self.service_accounts:
            if _glob(rule.server or "*", server) and _glob(rule.namespace, namespace):
                ns, sep, sa = rule.service_account.rpartition(":")
                if not sep:
                    ns = namespace
                if ns and sa:
                    return ns, sa
        return None


@dataclass(frozen=True)
class AppView:
    """What the policy reads of an Application."""

    namespace: str  # where the Application lives
    name: str
    project: str
    repo_url: str
    server: str  # destination.server ("" = in-cluster)
    destination: str  # destination.namespace

    @classmethod
    def of(cls, obj: KubeObject) -> AppView:
        meta = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        dest = spec.get("destination") or {}
        return cls(
            namespace=str(meta.get("namespace") or ""),
            name=str(meta.get("name") or ""),
            project=str(spec.get("project") or DEFAULT_PROJECT),
            repo_url=str((spec.get("source") or {}).get("repoURL") or ""),
            server=str(dest.get("server") or ""),
            destination=str(dest.get("namespace") or ""),
        )


@dataclass(frozen=True)
class Refusal:
    what: str  # the object (or "the Application")
    rule: str  # the rule that refused it
    fix: str  # how to allow it

    def __str__(self) -> str:
        return f"{self.what}: {self.rule}; {self.fix}"


@dataclass(frozen=True)
class Verdict:
    project: str
    refusals: tuple[Refusal, ...] = ()
    user: str = ""  # the user to impersonate; "" = the reconciler itself
    service_account: str = ""  # "namespace/name" of that user, for messages

    @property
    def allowed(self) -> bool:
        return not self.refusals

    def message(self) -> str:
        shown = "; ".join(str(r) for r in self.refusals[:MAX_REFUSALS_SHOWN])
        more = len(self.refusals) - MAX_REFUSALS_SHOWN
        extra = f" (and {more} more)" if more > 0 else ""
        return (
            f"project '{self.project}' refused {len(self.refusals)} object(s), so nothing "
            f"was applied or pruned: {shown}{extra}"
        )


def service_account_user(namespace: str, name: str) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


def _where(ref: ObjectRef) -> str:
    group = f"{ref.group}/" if ref.group else ""
    name = f"{ref.namespace}/{ref.name}" if ref.namespace else ref.name
    return f"{group}{ref.kind} '{name}'"


def evaluate(
    project: Project, app: AppView, refs: Iterable[ObjectRef], control_namespace: str
) -> Verdict:
    """Every refusal of `project` for `app` delivering `refs` (cluster-scoped objects have
    no namespace), and the identity that applies them."""
    server = app.server or IN_CLUSTER
    spec = f"AppProject '{project.name}'"
    refusals: list[Refusal] = []
    if not project.usable_from(app.namespace, control_namespace):
        refusals.append(
            Refusal(
                f"the Application '{app.namespace}/{app.name}'",
                f"Applications in namespace '{app.namespace}' may not use project "
                f"'{project.name}' (only those in '{control_namespace}' and in its sourceNamespaces)",
                f"add '{app.namespace}' to spec.sourceNamespaces of {spec}",
            )
        )
    if server != IN_CLUSTER:
        refusals.append(
            Refusal(
                "the Application",
                f"destination.server '{server}' is not this cluster ({IN_CLUSTER})",
                "leave destination.server empty",
            )
        )
    if not project.repo_permitted(app.repo_url):
        refusals.append(
            Refusal(
                "the Application",
                f"repository '{app.repo_url}' is not in sourceRepos",
                f"add it to spec.sourceRepos of {spec}",
            )
        )
    if app.destination and not project.destination_permitted(server, app.destination):
        refusals.append(
            Refusal(
                "the Application",
                f"destination namespace '{app.destination}' is not permitted by destinations",
                f"add {{namespace: {app.destination}}} to spec.destinations of {spec}",
            )
        )
    for ref in refs:
        namespaced = bool(ref.namespace)
        if not project.kind_permitted(ref.group, ref.kind, namespaced):
            which = "namespace" if namespaced else "cluster"
            listed = project.namespace_blacklist if namespaced else project.cluster_blacklist
            why = (
                "is in " + which + "ResourceBlacklist"
                if any(k.matches(ref.group, ref.kind) for k in listed)
                else (
                    "is not in " + which + "ResourceWhitelist"
                    if namespaced
                    else "is cluster-scoped and not in clusterResourceWhitelist"
                )
            )
            refusals.append(
                Refusal(
                    _where(ref),
                    f"kind {GroupKind(ref.group, ref.kind)} {why}",
                    f"add {GroupKind(ref.group, ref.kind)} to spec.{which}ResourceWhitelist of "
                    f"{spec} (and out of its blacklist), or use a project that allows it",
                )
            )
        elif namespaced and not project.destination_permitted(server, ref.namespace):
            refusals.append(
                Refusal(
                    _where(ref),
                    f"namespace '{ref.namespace}' is not permitted by destinations",
                    f"add {{namespace: {ref.namespace}}} to spec.destinations of {spec}, "
                    "or use a project that allows it",
                )
            )
    if project.name == PLATFORM_PROJECT:
        return Verdict(project.name, tuple(refusals))
    account = project.service_account(server, app.destination)
    if account is None:
        refusals.append(
            Refusal(
                "the Application",
                f"no destinationServiceAccounts entry of project '{project.name}' matches "
                f"namespace '{app.destination or '(none)'}' (only project '{PLATFORM_PROJECT}' "
                "applies as the reconciler itself)",
                f"add {{namespace: '{app.destination or '*'}', defaultServiceAccount: NAME}} to "
                f"spec.destinationServiceAccounts of {spec}",
            )
        )
        return Verdict(project.name, tuple(refusals))
    ns, name = account
    return Verdict(project.name, tuple(refusals), service_account_user(ns, name), f"{ns}/{name}")


# ---- parsing helpers (bounded, errors name the field) ------------------------------------


def _invalid(project: str, field: str, why: str) -> PermanentError:
    return PermanentError(
        f"AppProject '{project}': spec.{field} {why}",
        hint="see Argo CD's AppProject field names in the gitops repository's README",
    )


def _list(project: str, spec: Mapping[str, Any], field: str) -> list[Any]:
    value = spec.get(field)
    if value is None:
        return []
    if not isinstance(value, list):
        raise _invalid(project, field, "must be a list")
    if len(value) > MAX_ENTRIES:
        raise _invalid(project, field, f"has more than {MAX_ENTRIES} entries")
    return value


def _strings(project: str, spec: Mapping[str, Any], field: str) -> tuple[str, ...]:
    items = _list(project, spec, field)
    if not all(isinstance(i, str) and len(i) <= MAX_TEXT for i in items):
        raise _invalid(project, field, f"must hold strings of at most {MAX_TEXT} characters")
    return tuple(items)


def _objects(project: str, spec: Mapping[str, Any], field: str) -> list[Mapping[str, Any]]:
    items = _list(project, spec, field)
    if not all(isinstance(i, dict) for i in items):
        raise _invalid(project, field, "must hold objects")
    return items


def _text(project: str, item: Mapping[str, Any], key: str, default: str) -> str:
    value = item.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise _invalid(project, key, f"must be a string of at most {MAX_TEXT} characters")
    return value


def _kinds(project: str, spec: Mapping[str, Any], field: str) -> tuple[GroupKind, ...]:
    return tuple(
        GroupKind(_text(project, item, "group", ""), _text(project, item, "kind", "*"))
        for item in _objects(project, spec, field)
    )
