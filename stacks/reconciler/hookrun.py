"""Running hooks: create one wave of a phase's hooks, read how they are doing, delete them
by their policies. The I/O half of hooks.py.

`HookRunner.wave(run, phase, wave, hooks)` creates the hooks of that wave that this
operation has not created yet (BeforeHookCreation first deletes the earlier instance:
by name, waiting until it is gone, or, for generateName hooks, every object labelled
with the same HOOK_ID), then judges each created hook by its health: Healthy, or a kind
without health, is Succeeded; Degraded (a Job's Failed condition, a Pod's Failed phase)
is Failed; anything else is still running. A hook whose object vanished before it was
seen to finish has Failed. HookSucceeded / HookFailed delete the object once it has
ended. Nothing here blocks: a wave still running is reported back, and the object's
next health change (the watch of managed kinds sees hooks too: they carry the managed
label and the tracking id) or a short requeue brings the controller back.

Named hooks are applied server-side (re-applying an existing one changes nothing, as
Argo CD's `kubectl apply`); generateName hooks are created with POST so the API server
picks the name.

Called by waves.py for each sync operation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from stacks.errors import PlatformError
from stacks.kube.health import HealthStatus
from stacks.kube.objects import KubeObject, ObjectRef
from stacks.reconciler.api import FIELD_MANAGER
from stacks.reconciler.apply import object_health
from stacks.reconciler.hooks import (
    HOOK_ID,
    HookRecord,
    HookRun,
    HookState,
    Phase,
    Policy,
)
from stacks.reconciler.plan import Desired

log = logging.getLogger(__name__)

# How long a named hook's earlier instance may take to disappear within one reconcile
# (a Job deleted in the background goes at once); longer, and the wave waits a round.
PREVIOUS_GONE_WAIT = 5.0


class HookClient(Protocol):
    def apply(
        self, obj: KubeObject, field_manager: str, force: bool = True, dry_run: bool = False
    ) -> KubeObject: ...
    def create(self, obj: KubeObject) -> KubeObject: ...
    def get_ref(self, ref: ObjectRef) -> KubeObject | None: ...
    def delete_ref(self, ref: ObjectRef, propagation: str = "Background") -> bool: ...
    def list_objects(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> list[KubeObject]: ...


class HookRunner:
    def __init__(
        self,
        client: HookClient,
        lookup: Callable[[ObjectRef], KubeObject | None],
        remember: Callable[[KubeObject], None],
    ) -> None:
        self.client = client
        self.lookup = lookup  # the live cache (the watch keeps hooks' status current)
        self.remember = remember  # put an object we created into the live cache

    def wave(
        self, run: HookRun, phase: Phase, wave: int, hooks: Sequence[Desired]
    ) -> tuple[list[HookRecord], list[HookRecord]]:
        """Start and observe one wave; (still running, failed) records."""
        pairs = [(item, run.record(phase, item.ref, wave)) for item in hooks]
        for item, record in pairs:
            if record.state is HookState.PENDING:
                self._start(item, record)
        for item, record in pairs:
            if record.state is HookState.RUNNING:
                self._observe(record)
            self._delete_by_policy(item, record)
        waiting = [r for _, r in pairs if not r.done]
        failed = [r for _, r in pairs if r.state is HookState.FAILED]
        return waiting, failed

    def _start(self, item: Desired, record: HookRecord) -> None:
        assert item.hook is not None
        obj = item.obj
        named = bool((obj.get("metadata") or {}).get("name"))
        try:
            if Policy.BEFORE_HOOK_CREATION in item.hook.policies and not self._clear(item, named):
                record.message = "waiting for the previous instance to be deleted"
                return
            live = (
                self.client.apply(obj, FIELD_MANAGER, force=True)
                if named
                else self.client.create(obj)
            )
        except PlatformError as error:
            record.state = HookState.FAILED
            record.message = f"could not be created: {error}"
            return
        self.remember(live)
        record.ref = ObjectRef.of(live)
        record.state = HookState.RUNNING
        record.message = ""
        log.debug("created %s hook %s", record.phase, record.ref)

    def _clear(self, item: Desired, named: bool) -> bool:
        """Delete the earlier instance(s) of this hook; False while one is still there."""
        ref = item.ref
        if named:
            found = self.client.get_ref(ref)
            if found is None:
                return True
            if not (found.get("metadata") or {}).get("deletionTimestamp"):
                self.client.delete_ref(ref, "Background")
            deadline = time.monotonic() + PREVIOUS_GONE_WAIT
            while time.monotonic() < deadline:
                if self.client.get_ref(ref) is None:
                    return True
                time.sleep(0.1)
            return False
        label = ((item.obj.get("metadata") or {}).get("labels") or {}).get(HOOK_ID, "")
        if not label:
            return True
        for old in self.client.list_objects(
            ref.api_version, ref.kind, ref.namespace or None, label_selector=f"{HOOK_ID}={label}"
        ):
            self.client.delete_ref(ObjectRef.of(old), "Background")
        return True

    def _observe(self, record: HookRecord) -> None:
        assert record.ref is not None
        live = self.lookup(record.ref)
        if live is None:
            record.state = HookState.FAILED
            record.message = "the hook's object was deleted before it finished"
            return
        health = object_health(live)
        if health is None or health.healthy:
            record.state = HookState.SUCCEEDED
            record.message = health.message if health is not None else ""
        elif health.status is HealthStatus.DEGRADED:
            record.state = HookState.FAILED
            record.message = health.message or "failed"
        else:
            record.message = health.message

    def _delete_by_policy(self, item: Desired, record: HookRecord) -> None:
        assert item.hook is not None
        if record.deleted or record.ref is None:
            return
        policy = (
            Policy.HOOK_SUCCEEDED
            if record.state is HookState.SUCCEEDED
            else Policy.HOOK_FAILED
            if record.state is HookState.FAILED
            else None
        )
        if policy is None or policy not in item.hook.policies:
            return
        try:
            self.client.delete_ref(record.ref, "Background")
        except PlatformError as error:
            # The hook's result stands; the object stays until the next run's
            # BeforeHookCreation (or a person) removes it.
            log.debug("failed to delete hook %s: %s", record.ref, error)
            return
        record.deleted = str(policy)


def failure_text(phase: Phase, failed: Sequence[HookRecord]) -> str:
    """'PreSync hook Job team/migrate-x7k2p failed: Job failed: BackoffLimitExceeded'."""
    first = failed[0]
    ref = first.ref or first.identity
    where = f"{ref.namespace}/{ref.name}" if ref.namespace else ref.name
    more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
    return f"{phase} hook {ref.kind} '{where}' failed: {first.message or 'no reason given'}{more}"


def waiting_text(phase: Phase, wave: int, waiting: Sequence[HookRecord]) -> str:
    first = waiting[0]
    ref = first.ref or first.identity
    where = f"{ref.namespace}/{ref.name}" if ref.namespace else ref.name
    return (
        f"waiting for {phase} hooks of wave {wave} ({len(waiting)} not finished): "
        f"{ref.kind} '{where}': {first.message or 'running'}"
    )
