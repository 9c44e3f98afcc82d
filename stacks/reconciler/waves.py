"""Waves and the self-heal gate: whether a plan may be applied, then applying it.

`_heal_gate` decides whether this reconcile may apply (an operation under way, a
`platform sync`, or the automated policy: git changes always, drift only with selfHeal)
and backs self-heal off for 30 s when objects keep drifting (more than 10 heals a
minute). `_apply_waves` applies the plan wave by wave, each wave's kind groups in
parallel: waves never block a worker, so a wave that is not Healthy yet ends the
reconcile with "waiting for wave N" and the object's next health change (or a short
requeue) continues the same sync (`Operation`); a wave that stays unhealthy past the
Application's timeout fails the sync (WaveTimeout). Pruning follows only a finished
sync.

A mixin of AppController (see parts.py); both are steps of its `_sync`.
"""

from __future__ import annotations

import logging
import time

from stacks.kube.controller import Stop
from stacks.kube.errors import ApiError, Invalid
from stacks.reconciler import prune as pruning
from stacks.reconciler.apply import wave_health
from stacks.reconciler.desired import ReconcileFailed
from stacks.reconciler.memory import Operation
from stacks.reconciler.parts import NAMESPACE_MANAGER, ControllerParts, Sync

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
        """Apply the plan wave by wave (when allowed), then prune a finished sync."""
        spec, memory, report, plan = sync.spec, sync.memory, sync.report, sync.plan
        sync.finished = not plan.changes and not plan.prunes
        if not (sync.allowed and (plan.changes or plan.prunes or sync.operation is not None)):
            return None
        operation = sync.operation or Operation(sync.revision, sync.manual)
        sync.operation = memory.operation = operation
        if spec.create_namespace and spec.namespace:
            self._ensure_namespace(spec.namespace)
        sync.finished = True
        outcomes, failed = sync.outcomes, sync.failed
        for index, wave in enumerate(plan.waves):
            for group in wave.groups:
                done = self.applier.apply_group(group)
                outcomes += done
                failed += [o for o in done if not o.ok]
            if failed:
                sync.finished = False
                break
            if index == len(plan.waves) - 1:
                break
            _, unhealthy = wave_health(wave.steps, self._lookup)
            if unhealthy:
                began = operation.wave_started.setdefault(wave.number, time.monotonic())
                ref, health = unhealthy[0]
                detail = f"{ref}: {health.message or health.status}"
                if time.monotonic() - began > spec.wave_timeout:
                    memory.operation = None
                    sync.finished = False
                    self._record_inventory(memory, report, plan, outcomes, sync.pruned)
                    self._describe(
                        report, plan, outcomes, sync.objects, applied=True, pruned=sync.pruned
                    )
                    raise ReconcileFailed(
                        "WaveTimeout",
                        f"wave {wave.number} did not become healthy within {spec.wave_timeout:.0f}s: {detail}",
                        stalled=False,
                    )
                report.reconciling = f"waiting for wave {wave.number} to be healthy ({len(unhealthy)} not yet): {detail}"
                log.debug("Application '%s': %s", spec.key, report.reconciling)
                sync.finished = False
                sync.requeue = self.options.wave_poll
                break
        if sync.finished and plan.prunes:
            sync.pruned = pruning.prune(self.client, plan.prunes)
        self.metrics.count(
            applies=len([o for o in outcomes if o.ok]), prunes=len(sync.pruned.deleted)
        )
        if sync.finished or failed:
            memory.operation = None
        return None

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
