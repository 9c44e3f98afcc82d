"""What the parts of the reconciler's controller share.

The controller (controller.py: lifecycle, one reconcile and its sync steps) is built
from parts, one module per job, each a mixin of `AppController` over `ControllerParts`:

    triggers.py   what puts an Application on the queue: its watch, pushes, managed
                  objects' drift and health, dependencies, the API server coming back
    waves.py      the self-heal gate and applying a plan wave by wave, then pruning
    finalize.py   deleting an Application: prune its inventory, drop the finalizer
    memory.py     the per-app memory between reconciles
    desired.py    the desired-state loader (shared with `platform diff`)
    status.py     status building (pure)

`ControllerParts` declares what they share (set by AppController.__init__) and holds
the small readers every part uses: live state and the inventory record. `Sync` is one
reconcile's working state, which the sync steps read and fill in turn.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stacks.errors import TransientError
from stacks.kube.cache import KindCache, LiveCache
from stacks.kube.client import KubeClient
from stacks.kube.objects import KubeObject, ObjectRef
from stacks.kube.queue import WorkQueue
from stacks.reconciler import prune as pruning
from stacks.reconciler.api import AppKey, AppSpec
from stacks.reconciler.apply import Applier, ApplyOutcome
from stacks.reconciler.desired import Loader
from stacks.reconciler.events import AsyncEvents
from stacks.reconciler.memory import Memories, Memory, Operation
from stacks.reconciler.metrics import ReconcilerMetrics
from stacks.reconciler.plan import Live, Plan
from stacks.reconciler.source import GitCache
from stacks.reconciler.status import Report, describe, new_inventory

if TYPE_CHECKING:
    from stacks.kube.cache import RefKey
    from stacks.reconciler.policy import PolicyGate

NAMESPACE_MANAGER = "platform-reconciler-namespaces"


@dataclass(frozen=True)
class Options:
    cache_dir: Path
    watch_namespace: str | None = None
    workers: int = 8  # see program.py
    apply_workers: int = 8
    credentials_file: Path | None = None
    dependency_retry: float = 5.0
    drift_debounce: float = 0.2
    wave_poll: float = 2.0
    max_backoff: float = 300.0
    projects: bool = True  # enforce AppProjects (policy.py); off only for tests/development
    project_namespace: str = "platform-system"  # where AppProjects live


@dataclass
class Sync:
    """One reconcile's working state: the sync steps read and fill it in turn."""

    spec: AppSpec
    obj: KubeObject
    previous: dict[str, Any]
    memory: Memory
    report: Report
    revision: str = ""
    plan: Plan = field(init=False)  # set by the compare step
    objects: dict[RefKey, KubeObject | None] = field(default_factory=dict)
    manual: bool = False  # a `platform sync` not handled yet
    operation: Operation | None = None  # the sync under way at this revision
    allowed: bool = False  # the plan may be applied (policy, self-heal gate)
    client: KubeClient | None = None  # applies and prunes: the project's identity (policy.py)
    outcomes: list[ApplyOutcome] = field(default_factory=list)
    failed: list[ApplyOutcome] = field(default_factory=list)
    pruned: pruning.PruneResult = field(default_factory=lambda: pruning.PruneResult((), (), ()))
    finished: bool = False  # every wave applied and healthy (or nothing to do)
    requeue: float = 3600.0


class ControllerParts:
    """The state the controller's parts share; AppController.__init__ sets it."""

    client: KubeClient
    options: Options
    queue: WorkQueue[AppKey]
    apps: KindCache
    live: LiveCache
    git: GitCache
    loader: Loader
    applier: Applier
    events: AsyncEvents
    metrics: ReconcilerMetrics
    memories: Memories
    _namespaces: set[str]  # created for CreateNamespace=true
    _stop: threading.Event
    policy: PolicyGate  # projects: who may deploy what, as whom

    def memory(self, key: AppKey) -> Memory:
        return self.memories.of(key)

    def _live_state(
        self, refs: Iterable[ObjectRef]
    ) -> tuple[dict[RefKey, Live | None], dict[RefKey, KubeObject | None]]:
        refs = list(refs)
        caches: dict[tuple[str, str], KindCache] = {}
        for ref in refs:
            if (ref.group, ref.kind) not in caches and ref.version:
                caches[(ref.group, ref.kind)] = self.live.kind(ref.api_version, ref.kind)
        if not self.live.wait_synced(list(caches.values()), timeout=15.0):
            raise TransientError("the watches of managed kinds have not listed yet")

        def get(ref: ObjectRef) -> KubeObject | None:
            cache = caches.get((ref.group, ref.kind))
            if cache is not None and not cache.unusable:
                return cache.get(ref.key)
            return self.client.get_ref(ref) if ref.version else None

        return self.loader.live(refs, get)

    def _lookup(self, ref: ObjectRef) -> KubeObject | None:
        cache = self.live.kind(ref.api_version, ref.kind)
        if cache.unusable:
            return self.client.get_ref(ref)
        return cache.get(ref.key)

    def _record_inventory(
        self,
        memory: Memory,
        report: Report,
        plan: Plan,
        outcomes: list[ApplyOutcome],
        pruned: pruning.PruneResult,
    ) -> None:
        entries = new_inventory(memory.inventory or [], plan, outcomes, pruned)
        memory.inventory = entries
        memory.expected = {e.ref.key: e.fields for e in entries if e.fields}
        report.inventory = entries

    def _describe(
        self,
        report: Report,
        plan: Plan,
        outcomes: list[ApplyOutcome],
        objects: dict[RefKey, KubeObject | None],
        applied: bool,
        pruned: pruning.PruneResult | None = None,
    ) -> bool:
        return describe(report, plan, outcomes, objects, self._lookup, applied, pruned)
