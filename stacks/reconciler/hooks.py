"""Resource hooks: which rendered objects are hooks, of which phases, and how a sync runs them. Pure.

A hook is an object annotated `gitops.platform.local/hook` or Argo CD's
`argocd.argoproj.io/hook` (ours wins when both are set) with PreSync, Sync, PostSync,
SyncFail or Skip (a comma list), or, without either, a Helm hook (`helm.sh/hook`) mapped
as Argo CD maps it:

    pre-install, pre-upgrade      PreSync
    post-install, post-upgrade    PostSync
    crd-install                   not a hook: the CRD is applied like any other object
    test, test-success/-failure,  not supported (as in Argo CD): the object is skipped,
    pre/post-rollback, pre/post-  never applied, and listed as skipped in the status
    delete

Argo CD's PreDelete/PostDelete are skipped the same way (this reconciler does not run
deletion hooks). `Skip` alone means the object is never applied.

Delete policies come from `hook-delete-policy` (ours or Argo CD's) and Helm's
`helm.sh/hook-delete-policy` (hook-succeeded, hook-failed, before-hook-creation), all of
them together; BeforeHookCreation when none is given, as Argo CD. A hook's wave is the
sync-wave annotation, else Helm's `helm.sh/hook-weight`.

A hook may have `metadata.generateName` instead of a name (render.py lets it through for
hooks only); each run then creates a new object (the API server picks the name). Hooks
are not in the inventory and never pruned as drift: BeforeHookCreation deletes the
previous instance of the same hook (for generateName hooks too: they carry a label naming
the hook, `HOOK_ID`, so the earlier objects are found after a restart as well).

`HookRun` is the state of the hooks of one sync operation (which hook was created as
which object, and how it ended); `summary` turns it into the bounded `status.hooks`.

Called by plan.py (normalize, make_plan), render.py (generateName), hookrun.py and
waves.py (running them), status.py and inspect.py (showing them).
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from stacks.kube.objects import ObjectRef

GROUP = "gitops.platform.local"
HOOK = f"{GROUP}/hook"
HOOK_DELETE_POLICY = f"{GROUP}/hook-delete-policy"
ARGO_HOOK = "argocd.argoproj.io/hook"
ARGO_HOOK_DELETE_POLICY = "argocd.argoproj.io/hook-delete-policy"
HELM_HOOK = "helm.sh/hook"
HELM_HOOK_WEIGHT = "helm.sh/hook-weight"
HELM_HOOK_DELETE_POLICY = "helm.sh/hook-delete-policy"
# On every hook object we create: which hook of which Application it is an instance of
# (a hash: label values are at most 63 characters), so BeforeHookCreation finds earlier
# instances of a generateName hook.
HOOK_ID = f"{GROUP}/hook-id"

# At most this many hooks are listed in status.hooks (the rest are counted).
MAX_LISTED_HOOKS = 50


class Phase(StrEnum):
    PRE_SYNC = "PreSync"
    SYNC = "Sync"
    POST_SYNC = "PostSync"
    SYNC_FAIL = "SyncFail"


RUN_ORDER = (Phase.PRE_SYNC, Phase.SYNC, Phase.POST_SYNC)
SUCCEEDED = "Succeeded"  # a run's phase once it is over
FAILED = "Failed"


class Policy(StrEnum):
    HOOK_SUCCEEDED = "HookSucceeded"
    HOOK_FAILED = "HookFailed"
    BEFORE_HOOK_CREATION = "BeforeHookCreation"


_HELM_PHASES = {
    "pre-install": Phase.PRE_SYNC,
    "pre-upgrade": Phase.PRE_SYNC,
    "post-install": Phase.POST_SYNC,
    "post-upgrade": Phase.POST_SYNC,
}
_HELM_UNSUPPORTED = frozenset(
    {
        "test",
        "test-success",
        "test-failure",
        "pre-rollback",
        "post-rollback",
        "pre-delete",
        "post-delete",
    }
)
_HELM_POLICIES = {
    "hook-succeeded": Policy.HOOK_SUCCEEDED,
    "hook-failed": Policy.HOOK_FAILED,
    "before-hook-creation": Policy.BEFORE_HOOK_CREATION,
}
_DELETION_HOOKS = frozenset({"PreDelete", "PostDelete"})


class HookError(ValueError):
    """An annotation names no hook type or delete policy we know (the render fails)."""


@dataclass(frozen=True)
class HookSpec:
    """What an object's annotations make of it as a hook."""

    phases: tuple[Phase, ...] = ()
    policies: frozenset[Policy] = frozenset({Policy.BEFORE_HOOK_CREATION})
    skip: str = ""  # why it is never applied ("" = it runs in `phases`)
    source: str = ""  # the annotation that made it a hook

    def runs_in(self, phase: Phase) -> bool:
        return not self.skip and phase in self.phases


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def hook_of(annotations: Mapping[str, str]) -> HookSpec | None:
    """The hook an object's annotations declare, or None for an ordinary object."""
    key = HOOK if HOOK in annotations else ARGO_HOOK if ARGO_HOOK in annotations else ""
    policies = _policies(annotations)
    if key:
        phases: list[Phase] = []
        skip = False
        deletion: list[str] = []
        for name in _split(annotations[key]):
            if name == "Skip":
                skip = True
            elif name in _DELETION_HOOKS:
                deletion.append(name)
            else:
                try:
                    phases.append(Phase(name))
                except ValueError:
                    raise HookError(
                        f"annotation {key}: unknown hook type {name!r} "
                        "(PreSync, Sync, PostSync, SyncFail or Skip)"
                    ) from None
        if skip and not phases:
            return HookSpec((), policies, "annotated Skip: never applied", key)
        if not phases:
            why = (
                f"{'/'.join(deletion)} hooks are not run by this reconciler"
                if deletion
                else "the hook annotation names no phase"
            )
            return HookSpec((), policies, f"{why}: never applied", key)
        return HookSpec(tuple(dict.fromkeys(phases)), policies, "", key)
    if HELM_HOOK not in annotations:
        return None
    helm = _split(annotations[HELM_HOOK])
    mapped = [_HELM_PHASES[h] for h in helm if h in _HELM_PHASES]
    if mapped:
        return HookSpec(tuple(dict.fromkeys(mapped)), policies, "", HELM_HOOK)
    if all(h == "crd-install" for h in helm):
        return None  # Argo CD applies a crd-install CRD as an ordinary object
    unsupported = [h for h in helm if h in _HELM_UNSUPPORTED or h not in _HELM_PHASES]
    return HookSpec(
        (),
        policies,
        f"Helm hook {', '.join(unsupported)!r} is not supported (as in Argo CD): never applied",
        HELM_HOOK,
    )


def _policies(annotations: Mapping[str, str]) -> frozenset[Policy]:
    found: set[Policy] = set()
    for key in (HOOK_DELETE_POLICY, ARGO_HOOK_DELETE_POLICY):
        for name in _split(annotations.get(key, "")):
            try:
                found.add(Policy(name))
            except ValueError:
                raise HookError(
                    f"annotation {key}: unknown delete policy {name!r} "
                    "(HookSucceeded, HookFailed or BeforeHookCreation)"
                ) from None
    for name in _split(annotations.get(HELM_HOOK_DELETE_POLICY, "")):
        if name not in _HELM_POLICIES:
            raise HookError(
                f"annotation {HELM_HOOK_DELETE_POLICY}: unknown delete policy {name!r} "
                "(hook-succeeded, hook-failed or before-hook-creation)"
            )
        found.add(_HELM_POLICIES[name])
    return frozenset(found or {Policy.BEFORE_HOOK_CREATION})


def is_hook_object(obj: Mapping[str, Any]) -> bool:
    """True when the object's annotations make it a hook (render.py: generateName)."""
    meta = obj.get("metadata")
    notes = meta.get("annotations") if isinstance(meta, dict) else None
    if not isinstance(notes, dict):
        return False
    try:
        return hook_of({str(k): str(v) for k, v in notes.items()}) is not None
    except HookError:
        return True  # normalize reports the bad annotation with its file and line


def hook_id(app: str, ref: ObjectRef) -> str:
    """The HOOK_ID label value of a hook of Application `app` (a hash, label-sized)."""
    text = f"{app}|{ref.group}|{ref.kind}|{ref.namespace}|{ref.name}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ---- one operation's hooks -------------------------------------------------------------


class HookState(StrEnum):
    PENDING = "Pending"  # not created yet
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SKIPPED = "Skipped"


@dataclass
class HookRecord:
    """One hook of one operation: the object it was created as and how it ended."""

    phase: Phase
    wave: int
    identity: ObjectRef  # as written (the name is the generateName for those hooks)
    ref: ObjectRef | None = None  # the object created (None until then)
    state: HookState = HookState.PENDING
    message: str = ""
    deleted: str = ""  # the policy it was deleted by ("" = still there)

    @property
    def done(self) -> bool:
        return self.state in (HookState.SUCCEEDED, HookState.FAILED, HookState.SKIPPED)


@dataclass
class HookRun:
    """The hooks of one sync operation at one revision, across reconciles."""

    revision: str
    records: dict[tuple[Phase, tuple[str, str, str, str]], HookRecord] = field(default_factory=dict)
    phase: str = "PreSync"  # PreSync, Sync, PostSync, Succeeded, Failed
    failure: str = ""  # why the operation failed ("" = it has not)
    reason: str = ""  # the failure's reason (HookFailed, ApplyFailed, WaveTimeout, ...)
    attempts: int = 0  # retries done at this revision (syncPolicy.retry)
    # After a failure: when to try again (monotonic); 0 = not at this revision; < 0 =
    # the controller's own backoff decides
    retry_at: float = -1.0
    wave_started: dict[tuple[str, int], float] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    def record(self, phase: Phase, identity: ObjectRef, wave: int) -> HookRecord:
        key = (phase, identity.key)
        found = self.records.get(key)
        if found is None:
            found = self.records[key] = HookRecord(phase, wave, identity)
        return found

    def of_phase(self, phase: Phase) -> list[HookRecord]:
        return [r for r in self.records.values() if r.phase is phase]


def summary(run: HookRun | None, skipped: Sequence[Any] = ()) -> dict[str, Any]:
    """status.hooks: the operation's phase and its hooks (bounded); {} when the
    Application has no hooks (the status then has none: to_status writes a null)."""
    if (run is None or not run.records) and not skipped:
        return {}
    items: list[dict[str, Any]] = []
    order = {p: i for i, p in enumerate((*RUN_ORDER, Phase.SYNC_FAIL))}
    records = sorted(
        run.records.values() if run else [],
        key=lambda r: (order[r.phase], r.wave, r.identity.kind, r.identity.name),
    )
    for rec in records:
        ref = rec.ref or rec.identity
        entry: dict[str, Any] = {
            "phase": str(rec.phase),
            "apiVersion": ref.api_version,
            "kind": ref.kind,
            "namespace": ref.namespace,
            "name": ref.name,
            "syncWave": rec.wave,
            "state": str(rec.state),
        }
        if rec.identity.name != ref.name:  # a generateName hook: as written in git
            entry["hook"] = rec.identity.name
        if rec.message:
            entry["message"] = rec.message[:300]
        if rec.deleted:
            entry["deleted"] = rec.deleted
        items.append(entry)
    for item in skipped:
        items.append(
            {
                "phase": "Skip",
                "kind": item.ref.kind,
                "namespace": item.ref.namespace,
                "name": item.ref.name,
                "syncWave": item.wave,
                "state": str(HookState.SKIPPED),
                "message": item.hook.skip[:300],
            }
        )
    result: dict[str, Any] = {
        "revision": run.revision if run else "",
        "phase": run.phase if run else "",
        "items": items[:MAX_LISTED_HOOKS],
        "omitted": max(0, len(items) - MAX_LISTED_HOOKS),
    }
    if run and run.failure:
        result["message"] = run.failure[:1000]
        result["reason"] = run.reason
        result["retries"] = run.attempts
        # After a restart: 0 = not tried again at this revision, 1 = a retry is due
        result["retry"] = 0 if run.retry_at == 0 else 1 if run.retry_at > 0 else -1
    return result


def restore(status_hooks: Any, revision: str) -> HookRun | None:
    """The HookRun a previous process wrote into status.hooks for `revision` (None when
    there is none or it is for another revision): after a restart, an operation under
    way goes on where it was (its hooks are not created twice), and a failed one is not
    retried when it would not have been."""
    if not isinstance(status_hooks, dict) or status_hooks.get("revision") != revision:
        return None
    phase = str(status_hooks.get("phase") or "")
    if not revision or phase not in (*(str(p) for p in RUN_ORDER), FAILED, SUCCEEDED):
        return None
    run = HookRun(revision, phase=phase)
    if phase == FAILED:
        run.failure = str(status_hooks.get("message") or "")
        run.reason = str(status_hooks.get("reason") or "SyncFailed")
        run.attempts = int(status_hooks.get("retries") or 0)
        retry = int(status_hooks.get("retry") or 0)
        run.retry_at = 0.0 if retry == 0 else time.monotonic() if retry > 0 else -1.0
    for item in status_hooks.get("items") or []:
        if not isinstance(item, dict) or item.get("phase") not in {str(p) for p in Phase}:
            continue
        try:
            ref = ObjectRef.of(
                {
                    "apiVersion": str(item["apiVersion"]),
                    "kind": str(item["kind"]),
                    "metadata": {"name": str(item["name"]), "namespace": str(item["namespace"])},
                }
            )
            record = run.record(
                Phase(item["phase"]),
                dataclasses.replace(ref, name=str(item.get("hook") or ref.name)),
                int(item.get("syncWave") or 0),
            )
            record.ref = ref
            record.state = HookState(str(item.get("state")))
        except (KeyError, ValueError, TypeError):
            continue  # written by hand or by an older version: that hook starts again
        record.message = str(item.get("message") or "")
        record.deleted = str(item.get("deleted") or "")
        if record.state is HookState.PENDING:
            record.ref = None
    return run


def describe_hooks(status_hooks: Mapping[str, Any] | None) -> str:
    """One line for `platform apps`: the operation's phase and its unfinished or failed
    hooks ("" when there are none)."""
    if not status_hooks:
        return ""
    items = [i for i in status_hooks.get("items") or [] if isinstance(i, dict)]
    phase = str(status_hooks.get("phase") or "")
    if not items:
        return ""
    notable = [i for i in items if i.get("state") in ("Running", "Pending", "Failed")]
    shown = ", ".join(
        f"{i.get('phase')} {i.get('kind')}/{i.get('name')} {i.get('state')}" for i in notable[:3]
    )
    done = sum(1 for i in items if i.get("state") == "Succeeded")
    text = f"{phase}: {done}/{len(items)} hooks succeeded"
    return f"{text}; {shown}" if shown else text
