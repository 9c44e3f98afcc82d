"""Plan: desired objects vs live state vs the recorded inventory -> a frozen Plan. Pure.

    normalize(manifests, app, scope)   rendered objects -> Desired (namespace defaulted,
                                       tracking id stamped, sync wave read, content hash)
    make_plan(...)                     what to create, update, leave alone and prune

An object is left alone ("unchanged") only when the content we last applied (hash in the
inventory) equals what git wants now AND the live object still exists with our field
manager's fields exactly as our last apply left them; a delete or a hand edit of a field
we own changes those fields, so drift is seen without a diff of every object.

Pruning only ever considers the inventory (never a label scan), only objects that still
carry this app's tracking id, never PVCs, Namespaces or CRDs unless annotated
`gitops.platform.local/prune: "true"`, and stops (the breaker) when it would delete more
than half of what the app manages, unless the app carries the allow-mass-prune
annotation ("true" or the revision).

Called by the controller for every reconcile and by `platform diff`.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from stacks.kube.objects import KubeObject, ObjectRef, annotations_of
from stacks.reconciler.api import (
    ALLOW_MASS_PRUNE,
    FIELD_MANAGER,
    MANAGED_LABEL,
    PRUNE,
    SYNC_WAVE,
    TRACKING,
    AppKey,
    tracking_id,
)
from stacks.reconciler.hooks import (
    HELM_HOOK_WEIGHT,
    HOOK_ID,
    HookError,
    HookSpec,
    Phase,
    hook_id,
    hook_of,
)
from stacks.reconciler.ignore import IgnoreRule, fields_hash_ignoring, rules_for
from stacks.reconciler.options import object_options
from stacks.reconciler.render import Manifest, RenderError, RenderProblem

if TYPE_CHECKING:
    from stacks.kube.cache import RefKey

# Helm / gitops-engine install order; kinds not listed (custom resources) come last.
KIND_ORDER: tuple[str, ...] = (
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
)
_KIND_RANK = {kind: rank for rank, kind in enumerate(KIND_ORDER)}
# Never pruned (nor cascade-deleted) unless annotated gitops.platform.local/prune: "true":
# a Namespace or a CRD takes everything inside it along, a PVC takes its data.
PROTECTED_KINDS = frozenset(
    {
        ("", "Namespace"),
        ("", "PersistentVolumeClaim"),
        ("apiextensions.k8s.io", "CustomResourceDefinition"),
    }
)


def kind_rank(kind: str) -> int:
    return _KIND_RANK.get(kind, len(KIND_ORDER))


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()


def content_hash(obj: KubeObject) -> str:
    return hashlib.sha256(_canonical(obj)).hexdigest()[:16]


def fields_hash(live: KubeObject, manager: str = FIELD_MANAGER) -> str:
    """Hash of the fields `manager` owns on `live` ("" when none): through apply, and
    through create/replace for objects synced with Replace=true (options.py). One entry
    hashes as it always has, so recorded inventories stay valid."""
    entries = [
        entry
        for entry in (live.get("metadata") or {}).get("managedFields") or []
        if entry.get("manager") == manager
        and entry.get("operation") in ("Apply", "Update")
        and not entry.get("subresource")
    ]
    if len(entries) == 1:
        return content_hash(entries[0].get("fieldsV1") or {})
    if not entries:
        return ""
    entries.sort(key=lambda e: str(e.get("operation")))
    return content_hash({"entries": [e.get("fieldsV1") or {} for e in entries]})


# ---- values ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Desired:
    """One object as git wants it. Kept as compact JSON, not as a dict: the controller
    keeps an app's render between reconciles, and for 10,000 objects dicts take about
    five times the memory (issue 14); it is decoded only to be applied."""

    ref: ObjectRef  # for a generateName hook, the name is the generateName
    body: bytes  # the object as JSON, keys sorted (what `hash` is the hash of)
    wave: int
    hash: str
    where: str = ""
    hook: HookSpec | None = None  # a hook (hooks.py): never planned, inventoried or pruned

    @classmethod
    def of(
        cls,
        obj: KubeObject,
        wave: int = 0,
        where: str = "",
        hook: HookSpec | None = None,
        ref: ObjectRef | None = None,
    ) -> Desired:
        body = _canonical(obj)
        return cls(
            ref or ObjectRef.of(obj),
            body,
            wave,
            hashlib.sha256(body).hexdigest()[:16],
            where,
            hook,
        )

    @property
    def obj(self) -> KubeObject:
        value: KubeObject = json.loads(self.body)
        return value


@dataclass(frozen=True)
class InventoryEntry:
    ref: ObjectRef
    hash: str = ""
    fields: str = ""

    def to_json(self) -> dict[str, str]:
        entry = {"id": self.ref.inventory_id(), "v": self.ref.version}
        if self.hash:
            entry["hash"] = self.hash
        if self.fields:
            entry["fields"] = self.fields
        return entry

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> InventoryEntry:
        return cls(
            ObjectRef.from_inventory_id(str(raw["id"]), str(raw.get("v", ""))),
            str(raw.get("hash", "")),
            str(raw.get("fields", "")),
        )


@dataclass(frozen=True)
class Live:
    """What the planner needs to know of a live object."""

    fields: str = ""  # fields_hash of the live object
    tracking: str = ""  # its tracking-id annotation
    prune_annotation: str = ""  # its gitops.platform.local/prune annotation
    deleting: bool = False
    no_prune: bool = False  # sync-options Prune=false (options.py)
    no_delete: bool = False  # sync-options Delete=false, or Helm's resource-policy keep

    @classmethod
    def of(cls, obj: KubeObject) -> Live:
        notes = annotations_of(obj)
        options = object_options(notes)
        return cls(
            fields=fields_hash(obj),
            tracking=notes.get(TRACKING, ""),
            prune_annotation=notes.get(PRUNE, ""),
            deleting=bool((obj.get("metadata") or {}).get("deletionTimestamp")),
            no_prune=options.get("Prune") == "false",
            no_delete=options.get("Delete") == "false",
        )


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class Step:
    desired: Desired
    action: Action
    reason: str = ""
    drift: bool = False  # git did not change it; the cluster did (a hand edit or delete)

    @property
    def ref(self) -> ObjectRef:
        return self.desired.ref


@dataclass(frozen=True)
class Wave:
    number: int
    groups: tuple[tuple[Step, ...], ...]  # in kind order; a group's steps may run in parallel

    @property
    def steps(self) -> tuple[Step, ...]:
        return tuple(step for group in self.groups for step in group)


@dataclass(frozen=True)
class PruneStep:
    ref: ObjectRef
    reason: str = ""


@dataclass(frozen=True)
class Plan:
    waves: tuple[Wave, ...]
    prunes: tuple[PruneStep, ...]  # to delete now, in order
    pending_prunes: tuple[PruneStep, ...]  # would be deleted, but held (prune off or breaker)
    orphans: tuple[
        PruneStep, ...
    ]  # leave the inventory without a delete (protected, foreign, gone)
    blocked: str = ""  # why pruning is held back (breaker, empty render), "" if not
    inventory: tuple[InventoryEntry, ...] = field(default=())  # recorded before this sync
    hooks: tuple[Desired, ...] = ()  # run by a sync (hooks.py), never compared or pruned
    skipped: tuple[Desired, ...] = ()  # hooks never applied (Skip, unsupported Helm hooks)

    @property
    def steps(self) -> tuple[Step, ...]:
        return tuple(step for wave in self.waves for step in wave.steps)

    @property
    def changes(self) -> tuple[Step, ...]:
        return tuple(s for s in self.steps if s.action is not Action.UNCHANGED)

    @property
    def in_sync(self) -> bool:
        return not self.changes and not self.prunes and not self.pending_prunes


# ---- normalize -------------------------------------------------------------------------

# (apiVersion, kind) -> True namespaced, False cluster-scoped, None unknown kind
Scope = Callable[[str, str], "bool | None"]


def _crd_scopes(manifests: Sequence[Manifest]) -> dict[tuple[str, str], bool]:
    """Kinds defined by CRDs in the same render (so their CRs can be planned before install)."""
    scopes: dict[tuple[str, str], bool] = {}
    for manifest in manifests:
        obj = manifest.obj
        if obj.get("kind") != "CustomResourceDefinition":
            continue
        spec = obj.get("spec") or {}
        kind = (spec.get("names") or {}).get("kind", "")
        for version in spec.get("versions") or []:
            scopes[(f"{spec.get('group')}/{version.get('name')}", kind)] = (
                spec.get("scope") == "Namespaced"
            )
    return scopes


def normalize(
    manifests: Sequence[Manifest], app: AppKey, namespace: str, scope: Scope
) -> list[Desired]:
    """Rendered objects -> Desired, ready to apply; RenderError names file:line on problems."""
    problems: list[RenderProblem] = []
    local_scopes = _crd_scopes(manifests)
    result: list[Desired] = []
    for manifest in manifests:
        obj = copy.deepcopy(manifest.obj)
        api_version, kind = str(obj["apiVersion"]), str(obj["kind"])
        namespaced = local_scopes.get((api_version, kind))
        if namespaced is None:
            namespaced = scope(api_version, kind)
        if namespaced is None and _skip_dry_run(obj):
            namespaced = True  # a guess: most custom resources are; the apply tells
        if namespaced is None:
            problems.append(
                RenderProblem(
                    manifest.file,
                    manifest.line,
                    f"the API server has no kind {kind!r} in {api_version!r} (is its CRD installed?)",
                )
            )
            continue
        meta = obj["metadata"]
        for key in ("resourceVersion", "uid", "creationTimestamp", "managedFields", "generation"):
            meta.pop(key, None)
        if namespaced:
            if not meta.get("namespace"):
                if not namespace:
                    problems.append(
                        RenderProblem(
                            manifest.file,
                            manifest.line,
                            f"{kind} '{meta.get('name') or meta.get('generateName')}' has no namespace and the Application has no destination.namespace",
                        )
                    )
                    continue
                meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        annotations = dict(meta.get("annotations") or {})
        try:
            hook = hook_of(annotations)
        except HookError as error:
            problems.append(RenderProblem(manifest.file, manifest.line, str(error)))
            continue
        wave_key, wave_text = _wave_annotation(annotations)
        try:
            wave = int(str(wave_text).strip())
        except ValueError:
            problems.append(
                RenderProblem(
                    manifest.file,
                    manifest.line,
                    f"annotation {wave_key} must be an integer, not {wave_text!r}",
                )
            )
            continue
        ref = ObjectRef.of(obj)
        if not ref.name:  # a generateName hook (render.py lets only hooks through)
            ref = ObjectRef(
                ref.group, ref.kind, ref.namespace, str(meta["generateName"]), ref.version
            )
        annotations[TRACKING] = tracking_id(app, ref.group, ref.kind, ref.namespace, ref.name)
        meta["annotations"] = annotations
        labels = dict(meta.get("labels") or {})
        labels[MANAGED_LABEL] = "true"
        if hook is not None:
            labels[HOOK_ID] = hook_id(str(app), ref)
        meta["labels"] = labels
        result.append(Desired.of(obj, wave, manifest.where, hook, ref))
    if problems:
        raise RenderError(problems)
    return result


ARGO_SYNC_WAVE = "argocd.argoproj.io/sync-wave"


def _skip_dry_run(obj: KubeObject) -> bool:
    """SkipDryRunOnMissingResource=true: a kind the API server does not serve yet (its
    CRD comes from elsewhere) does not fail the render."""
    notes = (obj.get("metadata") or {}).get("annotations") or {}
    if not isinstance(notes, dict):
        return False
    return object_options(notes).get("SkipDryRunOnMissingResource") == "true"


def hook_waves(hooks: Sequence[Desired], phase: Phase) -> list[tuple[int, list[Desired]]]:
    """The hooks that run in `phase`, by wave, each wave in kind order then name (as
    ordinary objects are)."""
    by_wave: dict[int, list[Desired]] = {}
    for item in hooks:
        if item.hook is not None and item.hook.runs_in(phase):
            by_wave.setdefault(item.wave, []).append(item)
    return [
        (
            wave,
            sorted(
                by_wave[wave],
                key=lambda d: (kind_rank(d.ref.kind), d.ref.kind, d.ref.namespace, d.ref.name),
            ),
        )
        for wave in sorted(by_wave)
    ]


def _wave_annotation(annotations: Mapping[str, str]) -> tuple[str, str]:
    """(annotation, text) of an object's wave: ours, else Argo CD's, else Helm's hook
    weight (gitops-engine reads the weight of any object that carries it), else 0."""
    for key in (SYNC_WAVE, ARGO_SYNC_WAVE, HELM_HOOK_WEIGHT):
        if key in annotations:
            return key, str(annotations[key])
    return SYNC_WAVE, "0"


def ignoring_differences(
    rules: Sequence[IgnoreRule],
    desired: Sequence[Desired],
    live: Mapping[RefKey, Live | None],
    objects: Mapping[RefKey, KubeObject | None],
    reread: Callable[[ObjectRef], KubeObject | None] | None = None,
) -> dict[RefKey, Live | None]:
    """`live` with the fields hash of objects that spec.ignoreDifferences rules match
    taken blind to those fields (ignore.py), so the plan sees no drift in them.
    `reread`: the object from the API server, for managedFieldsManagers rules (the
    watch caches keep only our own managedFields entry)."""
    result = dict(live)
    if not rules:
        return result
    for item in desired:
        state, obj = live.get(item.ref.key), objects.get(item.ref.key)
        if item.hook is not None or state is None or obj is None:
            continue
        matched = rules_for(rules, *item.ref.key)
        if matched and reread is not None and any(r.managers for r in matched):
            obj = reread(item.ref) or obj
        if matched:
            fields = fields_hash_ignoring(obj, item.obj, matched, FIELD_MANAGER)
            result[item.ref.key] = dataclasses.replace(state, fields=fields)
    return result


def accepted_hashes(
    rules: Sequence[IgnoreRule], plan: Plan, objects: Mapping[RefKey, KubeObject | None]
) -> dict[RefKey, str]:
    """The plain fields hash of each object an ignoreDifferences rule matches and the plan
    leaves unchanged: a live state accepted as in sync, which the watch need not report
    again (Memory.accepted, triggers.py)."""
    accepted = {}
    for step in plan.steps:
        key = step.ref.key
        obj = objects.get(key)
        if step.action is Action.UNCHANGED and obj is not None and rules_for(rules, *key):
            accepted[key] = fields_hash(obj)
    return accepted


# ---- plan ------------------------------------------------------------------------------


# A shorter prefix than git's own default abbreviation would match many revisions, so an
# override written for one commit could silently allow a later mass prune.
MIN_SHORT_SHA = 7


def mass_prune_allowed(annotation: str, revision: str) -> bool:
    """True when the allow-mass-prune annotation lets `revision` prune more than half:
    exactly `true`, the full revision, or a short SHA of at least 7 hex characters.
    Nothing is stripped or case-folded: ` true ` or `TRUE` is a typo, not a consent."""
    if annotation == "true":
        return True
    if len(annotation) < MIN_SHORT_SHA or not revision:
        return False
    if any(c not in "0123456789abcdef" for c in annotation):
        return False
    return revision.startswith(annotation)


def make_plan(
    app: AppKey,
    desired: Sequence[Desired],
    live: Mapping[RefKey, Live | None],
    inventory: Sequence[InventoryEntry],
    *,
    prune: bool,
    allow_empty: bool,
    allow_mass_prune: bool,
    revision: str = "",
    deleting: bool = False,
) -> Plan:
    """Pair desired with live and inventory. `live[key]` None = known absent; no key =
    unknown (applied anyway; never pruned). `deleting`: the Application is being
    deleted (Delete=false objects stay; Prune=false ones go)."""
    recorded = {entry.ref.key: entry for entry in inventory}
    hooks = tuple(d for d in desired if d.hook is not None and not d.hook.skip)
    skipped = tuple(d for d in desired if d.hook is not None and d.hook.skip)
    desired = [d for d in desired if d.hook is None]
    by_wave: dict[int, list[Step]] = {}
    for item in desired:
        state = live.get(item.ref.key)
        entry = recorded.get(item.ref.key)
        if item.ref.key in live and state is None:
            drift = entry is not None and entry.hash == item.hash
            step = Step(item, Action.CREATE, "missing from the cluster", drift)
        elif state is None:
            step = Step(item, Action.UPDATE, "live state unknown")
        elif entry is None or not entry.hash:
            step = Step(item, Action.UPDATE, "not yet applied by this app")
        elif entry.hash != item.hash:
            step = Step(item, Action.UPDATE, "changed in git")
        elif not state.fields or state.fields != entry.fields:
            step = Step(item, Action.UPDATE, "changed in the cluster", True)
        else:
            step = Step(item, Action.UNCHANGED)
        by_wave.setdefault(item.wave, []).append(step)

    waves = []
    for number in sorted(by_wave):
        steps = sorted(
            by_wave[number],
            key=lambda s: (kind_rank(s.ref.kind), s.ref.kind, s.ref.namespace, s.ref.name),
        )
        groups: list[list[Step]] = []
        for step in steps:
            if groups and kind_rank(groups[-1][0].ref.kind) == kind_rank(step.ref.kind):
                groups[-1].append(step)
            else:
                groups.append([step])
        waves.append(Wave(number, tuple(tuple(g) for g in groups)))

    wanted = {item.ref.key for item in desired}
    candidates: list[PruneStep] = []
    orphans: list[PruneStep] = []
    for entry in inventory:
        if entry.ref.key in wanted:
            continue
        ref = entry.ref
        if ref.key not in live:
            continue  # live state unknown (e.g. not readable): keep it, never delete blind
        state = live.get(ref.key)
        if state is None:
            orphans.append(PruneStep(ref, "already gone"))
            continue
        expected = tracking_id(app, ref.group, ref.kind, ref.namespace, ref.name)
        if state.tracking != expected:
            orphans.append(
                PruneStep(ref, "not pruned: it no longer carries this app's tracking id")
            )
            continue
        if state.prune_annotation == "false":
            orphans.append(PruneStep(ref, f"not pruned: annotated {PRUNE}=false"))
            continue
        if state.no_prune and not deleting:
            orphans.append(PruneStep(ref, "not pruned: sync-options Prune=false"))
            continue
        if state.no_delete and deleting:
            orphans.append(PruneStep(ref, "kept: sync-options Delete=false"))
            continue
        if (ref.group, ref.kind) in PROTECTED_KINDS and state.prune_annotation != "true":
            orphans.append(
                PruneStep(
                    ref, f"not pruned: {ref.kind} objects are kept unless annotated {PRUNE}=true"
                )
            )
            continue
        candidates.append(PruneStep(ref, "removed from git"))
    candidates.sort(key=lambda p: (-kind_rank(p.ref.kind), p.ref.namespace, p.ref.name))

    blocked = ""
    if candidates:
        if not prune:
            blocked = "pruning is off (syncPolicy.automated.prune is false)"
        elif not desired and not allow_empty:
            blocked = "the render is empty; refusing to prune everything (set syncPolicy.automated.allowEmpty)"
        elif len(candidates) * 2 > len(inventory) and not allow_mass_prune:
            blocked = (
                f"this sync would prune {len(candidates)} of the {len(inventory)} objects the app manages; "
                f"annotate the Application {ALLOW_MASS_PRUNE}=true (or ={revision[:12] or '<revision>'}) to allow it"
            )
    if blocked:
        return Plan(
            tuple(waves),
            (),
            tuple(candidates),
            tuple(orphans),
            blocked,
            tuple(inventory),
            hooks,
            skipped,
        )
    return Plan(
        tuple(waves), tuple(candidates), (), tuple(orphans), "", tuple(inventory), hooks, skipped
    )
