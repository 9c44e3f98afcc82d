"""What the parts of the reconciler's controller share.

The controller (controller.py: `AppReconciler`, one reconcile and its sync steps, and
`AppController`, which assembles the parts and the `Runtime`) is built from parts, one
module per job, each a plain object over one `Shared`:

    triggers.py   what puts an Application on the queue: its watch, pushes, managed
                  objects' drift and health, dependencies
    waves.py      the self-heal gate and applying a plan wave by wave, then pruning
    finalize.py   deleting an Application: prune its inventory, drop the finalizer
    memory.py     the per-app memory between reconciles
    desired.py    the desired-state loader (shared with `platform diff`)
    status.py     status building (pure)

`Shared` holds the collaborators every part uses (the client, the caches, the git
cache, the applier, the queue the runtime drains, ...); AppController builds it once and
passes it to each part. `ControllerParts` is what a part derives from: it reads `Shared`
(through properties, since the caches are wired to the parts' own event handlers and so
are set after the parts exist) and holds the small readers every part uses: live state
and the inventory record. `Sync` is one reconcile's subject, which the sync steps read
and fill in turn.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stacks.errors import TransientError
from stacks.kube.backoff import Backoff
from stacks.kube.cache import KindCache, LiveCache
from stacks.kube.client import KubeClient
from stacks.kube.controller import QueueKey
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
    """One reconcile's subject: the steps read and fill it in turn."""

    key: AppKey
    obj: KubeObject
    previous: dict[str, Any]  # the status before this reconcile
    memory: Memory
    started: float = field(default_factory=time.monotonic)
    spec: AppSpec = field(init=False)  # set by the spec step
    report: Report = field(init=False)  # set by the spec step
    parsed: bool = False  # the spec step succeeded
    deleting: bool = False  # the finalize step ran (deletionTimestamp is set)
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


@dataclass
class Shared:
    """The collaborators of the reconciler's parts; AppController builds it once."""

    client: KubeClient
    options: Options
    metrics: ReconcilerMetrics
    events: AsyncEvents
    queue: WorkQueue[QueueKey] = field(default_factory=WorkQueue)  # the Runtime drains it
    memories: Memories = field(default_factory=Memories)
    namespaces: set[str] = field(default_factory=set)  # created for CreateNamespace=true
    # Set by AppController once the parts exist (their handlers feed the caches):
    git: GitCache = field(init=False)
    live: LiveCache = field(init=False)  # the managed kinds' caches
    apps: KindCache = field(init=False)  # the Applications (also served by `live`)
    loader: Loader = field(init=False)
    applier: Applier = field(init=False)
    policy: PolicyGate = field(init=False)  # projects: who may deploy what, as whom
    backoff: Backoff[QueueKey] = field(init=False)  # the Runtime's per-key backoff


class ControllerParts:
    """A part of the controller: reads the `Shared` collaborators it is given."""

    def __init__(self, shared: Shared) -> None:
        self.shared = shared

    @property
    def client(self) -> KubeClient:
        return self.shared.client

    @property
    def options(self) -> Options:
        return self.shared.options

    @property
    def queue(self) -> WorkQueue[QueueKey]:
        return self.shared.queue

    @property
    def apps(self) -> KindCache:
        return self.shared.apps

    @property
    def live(self) -> LiveCache:
        return self.shared.live

    @property
    def git(self) -> GitCache:
        return self.shared.git

    @property
    def loader(self) -> Loader:
        return self.shared.loader

    @property
    def applier(self) -> Applier:
        return self.shared.applier

    @property
    def events(self) -> AsyncEvents:
        return self.shared.events

    @property
    def metrics(self) -> ReconcilerMetrics:
        return self.shared.metrics

    @property
    def memories(self) -> Memories:
        return self.shared.memories

    @property
    def policy(self) -> PolicyGate:
        return self.shared.policy

    @property
    def _namespaces(self) -> set[str]:
        return self.shared.namespaces

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
