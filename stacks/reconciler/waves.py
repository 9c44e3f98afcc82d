"""Waves and the self-heal gate: whether a plan may be applied, then the sync operation.

`_heal_gate` decides whether this reconcile may apply (an operation under way, a
`platform sync`, or the automated policy: git changes always, drift only with selfHeal)
and backs self-heal off for 30 s when objects keep drifting (more than 10 heals a
minute).

`_apply_waves` runs one sync operation (`Operation`, and its hooks' `HookRun`,
hooks.py) as far as it can go in this reconcile, in Argo CD's order:

    PreSync hooks, wave by wave        each wave's hooks created, then Succeeded or Failed
    waves of objects and Sync hooks    each wave's kind groups applied in parallel, its
                                       Sync hooks created; the next wave waits until this
                                       one is Healthy and its hooks have finished
    prune                              (PruneLast: only once the last wave is Healthy too)
    PostSync hooks, wave by wave       once everything above is applied and Healthy

Nothing blocks a worker: whatever is not finished yet ends the reconcile with "waiting
for ..." and the object's next health change (hooks carry the managed label, so their
Jobs' changes come in too) or a short requeue continues the same operation. A wave or
hook wave still unfinished after the Application's timeout fails the sync
(WaveTimeout, HookTimeout). A failed hook stops the operation where it is (nothing after
it is applied or pruned), names the hook and its reason in Ready, and starts the
SyncFail hooks; such a revision is not synced again unless syncPolicy.retry allows it
(retry.py), a new commit arrives or `platform sync` asks. syncPolicy.retry also paces
and bounds the retries of apply failures; without it those keep the controller's own
backoff. The operation's hooks are written to status.hooks, and a restarted process
picks the operation up from there (`restore`).

Sync options (options.py): FailOnSharedResource refuses the sync before anything is
applied, PrunePropagationPolicy chooses how pruned objects go, RespectIgnoreDifferences
applies ignored fields with their live values (ignore.py), and the fields hash of what
was applied is taken blind to ignoreDifferences so the next compare agrees.

A part of the controller (see parts.py); both are steps of its sync.
"""

from __future__ import annotations

import dataclasses
import logging
import time

from stacks.kube.controller import Stop
from stacks.kube.errors import ApiError, Invalid
from stacks.kube.health import Health
from stacks.kube.objects import KubeObject, ObjectRef, annotations_of
from stacks.reconciler import prune as pruning
from stacks.reconciler.api import FIELD_MANAGER, TRACKING, owner_of_tracking
from stacks.reconciler.apply import ApplyOutcome, wave_health
from stacks.reconciler.desired import ReconcileFailed
from stacks.reconciler.hookrun import HookRunner, failure_text, waiting_text
from stacks.reconciler.hooks import (
    FAILED,
    SUCCEEDED,
    HookRecord,
    HookRun,
    Phase,
    restore,
    summary,
)
from stacks.reconciler.ignore import fields_hash_ignoring, keep_live_values, rules_for
from stacks.reconciler.memory import Operation
from stacks.reconciler.options import AppOptions
from stacks.reconciler.parts import NAMESPACE_MANAGER, ControllerParts, Sync
from stacks.reconciler.plan import Action, Plan, Step, _canonical, hook_waves

log = logging.getLogger(__name__)

SELF_HEAL_WINDOW = 60.0  # seconds over which heals are counted
SELF_HEAL_LIMIT = 10  # more heals than this in the window: back off
SELF_HEAL_BACKOFF = 30.0


class Waves(ControllerParts):
    def _heal_gate(self, sync: Sync) -> Stop | None:
        """Whether the plan may be applied now; Stop while self-heal backs off."""
        spec, memory, report, plan = sync.spec, sync.memory, sync.report, sync.plan
        git_changes = any(not s.drift for s in plan.changes) or bool(plan.prunes)
        if spec.self_heal and any(s.drift for s in plan.changes):
            now = time.monotonic()
            memory.heals = [t for t in memory.heals if now - t < SELF_HEAL_WINDOW] + [now]
            if len(memory.heals) > SELF_HEAL_LIMIT:  # something keeps fighting us: back off
                # Resources and sync say which objects differ (OutOfSync), so the status
                # never reads Synced beside "objects keep drifting".
                self._describe(report, plan, [], sync.objects, applied=False)
                report.ready = (
                    "False",
                    "SelfHealBackoff",
                    f"objects keep drifting; self-heal backs off for {SELF_HEAL_BACKOFF:.0f}s",
                )
                memory.heals = memory.heals[-5:]
                return Stop(SELF_HEAL_BACKOFF)
        sync.allowed = (
            sync.operation is not None
            or sync.manual
            or (spec.automated and (spec.self_heal or git_changes))
        )
        return None

    def _apply_waves(self, sync: Sync) -> Stop | None:
        """Run the sync operation as far as it can go now (the module docstring)."""
        spec, memory, report, plan = sync.spec, sync.memory, sync.report, sync.plan
        runner = HookRunner(sync.client or self.client, self._lookup, self._remember_hook)
        if memory.hooks is None and plan.hooks:  # after a restart: from status.hooks
            memory.hooks = restore(sync.previous.get("hooks"), sync.revision)
            if memory.hooks is not None and memory.hooks.phase not in (SUCCEEDED, FAILED):
                sync.operation = memory.operation = Operation(sync.revision, False)
                sync.allowed = True  # an operation under way goes on
        run = memory.hooks if memory.hooks and memory.hooks.revision == sync.revision else None
        sync.finished = not plan.changes and not plan.prunes
        retrying = False
        if run is not None and run.phase == FAILED:
            self._run_sync_fail(runner, run, plan)
            report.hooks = summary(run, plan.skipped)
            if run.retry_at >= 0 and not sync.manual and (plan.changes or plan.prunes):
                if run.retry_at == 0 or time.monotonic() < run.retry_at:
                    # This revision's sync failed and is not (yet) tried again.
                    self._describe(report, plan, [], sync.objects, applied=False)
                    raise ReconcileFailed(
                        run.reason,
                        run.failure,
                        stalled=run.retry_at == 0,
                        retry=spec.interval
                        if run.retry_at == 0
                        else max(0.05, run.retry_at - time.monotonic()),
                    )
                retrying = True
        else:
            report.hooks = summary(run, plan.skipped)
        if not (sync.allowed or retrying) or not (
            plan.changes
            or plan.prunes
            or sync.operation is not None
            or (sync.manual and plan.hooks)  # `platform sync` runs the hooks, as Argo CD
        ):
            return None
        options = AppOptions.of(spec.sync_options)
        sync.finished = False  # until the PostSync hooks are done
        operation = sync.operation or Operation(sync.revision, sync.manual)
        sync.operation = memory.operation = operation
        if run is None or run.phase in (SUCCEEDED, FAILED):
            attempts = run.attempts if run is not None and retrying else 0
            previous, run = run, HookRun(sync.revision, attempts=attempts)
            if previous is not None and previous.phase == FAILED and previous.retry_at < 0:
                # The controller's own retries of a failed apply (not Argo CD's: it
                # would not retry) do not run the SyncFail hooks again each time.
                run.records.update(
                    (key, record)
                    for key, record in previous.records.items()
                    if record.phase is Phase.SYNC_FAIL
                )
            memory.hooks = run
        if spec.create_namespace and spec.namespace:
            self._ensure_namespace(spec.namespace)
        if options.fail_on_shared:
            self._refuse_shared(sync)
        try:
            state = "waiting"
            if self._hook_phase(sync, runner, run, Phase.PRE_SYNC):
                run.phase = "Sync"
                state = self._sync_phase(sync, runner, run, options)
            if state == "done" and plan.prunes:
                sync.pruned = pruning.prune(
                    sync.client or self.client, plan.prunes, options.propagation
                )
            if state == "done":
                run.phase = "PostSync"
                if self._hook_phase(sync, runner, run, Phase.POST_SYNC):
                    run.phase = SUCCEEDED
                    sync.finished = True
        finally:
            report.hooks = summary(run, plan.skipped)
            self.metrics.count(
                applies=len([o for o in sync.outcomes if o.ok]),
                prunes=len(sync.pruned.deleted),
            )
        if sync.finished or sync.failed:
            memory.operation = None
        return None

    def _sync_phase(self, sync: Sync, runner: HookRunner, run: HookRun, options: AppOptions) -> str:
        """The waves of ordinary objects and Sync hooks: "done", "waiting" or "failed"
        (an apply failed: the conclude step reports it)."""
        spec, plan, report = sync.spec, sync.plan, sync.report
        operation = sync.operation
        assert operation is not None
        hooks = dict(hook_waves(plan.hooks, Phase.SYNC))
        waves = {wave.number: wave for wave in plan.waves}
        numbers = sorted(set(waves) | set(hooks))
        # PostSync and PruneLast need the last wave Healthy too; otherwise, as before,
        # a sync is done once its last wave is applied.
        gate_last = options.prune_last or any(
            h.hook is not None and h.hook.runs_in(Phase.POST_SYNC) for h in plan.hooks
        )
        for index, number in enumerate(numbers):
            wave = waves.get(number)
            if wave is not None:
                for group in wave.groups:
                    if options.respect_ignore and spec.ignore_differences:
                        group = self._keep_ignored(sync, group)
                    done = self._ignoring(sync, self.applier.apply_group(group, sync.client))
                    sync.outcomes += done
                    sync.failed += [o for o in done if not o.ok]
                if sync.failed:  # the conclude step reports it (`_apply_failed`)
                    self._sync_failed(sync, "ApplyFailed", "", stalled=False, quiet=True)
                    return "failed"
            waiting_hooks: list[HookRecord] = []
            if number in hooks:
                waiting_hooks, failed_hooks = runner.wave(run, Phase.SYNC, number, hooks[number])
                if failed_hooks:
                    raise self._sync_failed(
                        sync, "HookFailed", failure_text(Phase.SYNC, failed_hooks), hook=True
                    )
            unhealthy: list[tuple[ObjectRef, Health]] = []
            if wave is not None and (index < len(numbers) - 1 or gate_last):
                _, unhealthy = wave_health(wave.steps, self._lookup)
            if not unhealthy and not waiting_hooks:
                continue
            began = operation.wave_started.setdefault(number, time.monotonic())
            if unhealthy:
                ref, health = unhealthy[0]
                detail = f"{ref}: {health.message or health.status}"
                waiting = (
                    f"waiting for wave {number} to be healthy ({len(unhealthy)} not yet): {detail}"
                )
            else:
                detail = waiting_text(Phase.SYNC, number, waiting_hooks)
                waiting = detail
            if time.monotonic() - began > spec.wave_timeout:
                raise self._sync_failed(
                    sync,
                    "WaveTimeout",
                    f"wave {number} did not become healthy within {spec.wave_timeout:.0f}s: {detail}",
                    stalled=False,
                )
            report.reconciling = waiting
            log.debug("Application '%s': %s", spec.key, report.reconciling)
            sync.requeue = self.options.wave_poll
            return "waiting"
        return "done"

    def _hook_phase(self, sync: Sync, runner: HookRunner, run: HookRun, phase: Phase) -> bool:
        """Run `phase`'s hooks wave by wave; True once all have succeeded. A failed hook
        fails the sync (raises); a running one ends this reconcile ("waiting")."""
        for wave, items in hook_waves(sync.plan.hooks, phase):
            run.phase = str(phase)
            waiting, failed = runner.wave(run, phase, wave, items)
            if failed:
                raise self._sync_failed(sync, "HookFailed", failure_text(phase, failed), hook=True)
            if waiting:
                began = run.wave_started.setdefault((str(phase), wave), time.monotonic())
                text = waiting_text(phase, wave, waiting)
                if time.monotonic() - began > sync.spec.wave_timeout:
                    raise self._sync_failed(
                        sync,
                        "HookTimeout",
                        f"{phase} hooks of wave {wave} did not finish within "
                        f"{sync.spec.wave_timeout:.0f}s: {text}",
                        hook=True,
                    )
                sync.report.reconciling = text
                sync.requeue = self.options.wave_poll
                return False
        return True

    def _run_sync_fail(self, runner: HookRunner, run: HookRun, plan: Plan) -> None:
        """Start (or follow) the SyncFail hooks of a failed operation, wave by wave."""
        for wave, items in hook_waves(plan.hooks, Phase.SYNC_FAIL):
            waiting, _ = runner.wave(run, Phase.SYNC_FAIL, wave, items)
            if waiting:
                return

    def _sync_failed(
        self,
        sync: Sync,
        reason: str,
        message: str,
        stalled: bool = True,
        hook: bool = False,
        quiet: bool = False,
    ) -> ReconcileFailed:
        """The sync operation failed: record what it did, start the SyncFail hooks, and
        say when it is tried again (retry.py). `hook`: a hook failed, which without a
        retry policy is not tried again at this revision (Argo CD); other failures keep
        the controller's backoff. `quiet`: the conclude step reports the failure (apply
        failures), so only the run is marked."""
        spec, memory, report, plan = sync.spec, sync.memory, sync.report, sync.plan
        run = memory.hooks
        memory.operation = None
        if run is None or run.revision != sync.revision:
            run = memory.hooks = HookRun(sync.revision)
        run.phase, run.reason = FAILED, reason
        runner = HookRunner(sync.client or self.client, self._lookup, self._remember_hook)
        self._run_sync_fail(runner, run, plan)
        retry: float | None = None
        if spec.retry is not None:
            if spec.retry.allows(run.attempts):
                run.attempts += 1
                retry = spec.retry.delay(run.attempts)
                run.retry_at = time.monotonic() + retry
                note = f"; retry {run.attempts} of {spec.retry.describe_limit()} in {retry:.0f}s"
                stalled = False
            else:
                run.retry_at = 0.0
                retry = spec.interval
                note = f"; gave up after {run.attempts} retries (syncPolicy.retry.limit {spec.retry.limit})"
                stalled = True
        elif hook:
            run.retry_at = 0.0
            retry = spec.interval
            note = "; not tried again at this revision (push a fix, run `platform sync`, or set syncPolicy.retry)"
            stalled = True
        else:
            run.retry_at = -1.0  # the controller's own backoff
            note = ""
        run.failure = message + note
        report.hooks = summary(run, plan.skipped)
        if not quiet:
            sync.finished = False
            self._record_inventory(memory, report, plan, sync.outcomes, sync.pruned)
            self._describe(
                report, plan, sync.outcomes, sync.objects, applied=True, pruned=sync.pruned
            )
        return ReconcileFailed(reason, run.failure, stalled=stalled, retry=retry)

    def _apply_failed(self, sync: Sync, error: ReconcileFailed) -> ReconcileFailed:
        """The conclude step's ApplyFailed, with the retry policy's say (`_sync_failed`
        marked the run when the apply failed)."""
        run = sync.memory.hooks
        if run is None or run.revision != sync.revision or run.phase != FAILED:
            return error
        run.failure = f"{error}{run.failure}"
        if run.retry_at < 0:
            return ReconcileFailed(error.reason, run.failure, error.stalled, error.retry)
        if run.retry_at == 0:
            return ReconcileFailed(error.reason, run.failure, True, sync.spec.interval)
        wait = max(0.05, run.retry_at - time.monotonic())
        return ReconcileFailed(error.reason, run.failure, False, wait)

    def _refuse_shared(self, sync: Sync) -> None:
        """FailOnSharedResource=true: nothing is applied while an object this sync would
        apply carries another Application's tracking id."""
        for step in sync.plan.changes:
            live = sync.objects.get(step.ref.key)
            owner = owner_of_tracking(annotations_of(live or {}).get(TRACKING, ""))
            if owner is not None and owner != sync.spec.key:
                raise ReconcileFailed(
                    "SharedResource",
                    f"{step.ref} is already managed by Application '{owner}' "
                    "(FailOnSharedResource=true); nothing was applied",
                    stalled=True,
                )

    def _keep_ignored(self, sync: Sync, group: tuple[Step, ...]) -> tuple[Step, ...]:
        """RespectIgnoreDifferences=true: apply the fields that ignoreDifferences names
        as they are live (ignore.py). The step keeps git's hash: the inventory records
        what git wants, so this is not taken for a change in git next time."""
        steps = []
        for step in group:
            live = sync.objects.get(step.ref.key)
            matched = rules_for(sync.spec.ignore_differences, *step.ref.key)
            if live is not None and any(r.managers for r in matched):
                live = self.client.get_ref(step.ref)  # all managers' fields (not cached)
            if live is not None and matched and step.action is not Action.UNCHANGED:
                body = _canonical(keep_live_values(step.desired.obj, live, matched))
                step = dataclasses.replace(
                    step, desired=dataclasses.replace(step.desired, body=body)
                )
            steps.append(step)
        return tuple(steps)

    def _ignoring(self, sync: Sync, done: list[ApplyOutcome]) -> list[ApplyOutcome]:
        """Outcomes whose fields hash is taken blind to ignoreDifferences (as the compare
        step takes the live one), so the inventory records a hash the next compare
        reproduces."""
        rules = sync.spec.ignore_differences
        if not rules:
            return done
        result = []
        for outcome in done:
            matched = rules_for(rules, *outcome.step.ref.key)
            live = self._lookup(outcome.step.ref) if matched and outcome.ok else None
            if live is not None and any(r.managers for r in matched):
                live = self.client.get_ref(outcome.step.ref)  # all managers' fields
            if live is not None:
                fields = fields_hash_ignoring(
                    live, outcome.step.desired.obj, matched, FIELD_MANAGER
                )
                outcome = dataclasses.replace(outcome, fields=fields)
            result.append(outcome)
        return result

    def _remember_hook(self, live: KubeObject) -> None:
        """A hook we created, into the live cache (its health is read from there)."""
        ref = ObjectRef.of(live)
        self.live.kind(ref.api_version, ref.kind).put(live)

    def _ensure_namespace(self, name: str) -> None:
        if name in self._namespaces:
            return
        try:
            self.client.apply(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
                NAMESPACE_MANAGER,
                force=False,
            )
        except ApiError as error:
            raise ReconcileFailed(
                "CreateNamespaceFailed",
                f"failed to create Namespace '{name}': {error.message}",
                stalled=isinstance(error, Invalid),
            ) from error
        self._namespaces.add(name)
