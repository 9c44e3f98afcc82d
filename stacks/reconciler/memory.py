"""The per-app memory: what the controller keeps about each Application between reconciles.

    Memory      one Application's: its last fetch and render, its sync under way (waves),
                its inventory and the fields hash we expect per object, what was last
                written and logged, its recent self-heals (its failure count is the
                Runtime's per-key backoff, stacks/kube/controller.py)
    Memories    every Application's, thread-safe; forgotten when the Application is gone

Only the controller process holds it: after a restart it is rebuilt from the status
(inventory) and a fresh fetch. Called by the controller and its parts.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from stacks.reconciler.api import AppKey
from stacks.reconciler.hooks import HookRun
from stacks.reconciler.plan import Desired, InventoryEntry

if TYPE_CHECKING:
    from stacks.kube.cache import RefKey


@dataclass
class Operation:
    """A sync under way across reconciles (waves)."""

    revision: str
    forced: bool
    wave_started: dict[int, float] = field(default_factory=dict)


@dataclass
class Memory:
    """What the controller remembers about one Application between reconciles."""

    revision: str = ""
    fetched_at: float = 0.0
    fetch: bool = True
    # When the trigger that asked for a fresh fetch arrived: any fetch of the repository
    # that started since then serves it (GitCache coalesces them).
    fetch_since: float = field(default_factory=time.monotonic)
    tree: str = ""  # tree id of source.path in the last render
    render_key: tuple[str, str, bool, str] | None = None  # (tree id, path, recurse, namespace)
    # The last render, normalized. Only this form is kept (not the rendered manifests
    # too): for a 10,000-object app each copy is about 12 MB, and normalizing again on
    # every re-sync costs a deep copy and a hash per object.
    desired: list[Desired] = field(default_factory=list)
    operation: Operation | None = None
    hooks: HookRun | None = None  # the last sync operation's hooks and outcome (hooks.py)
    # Being deleted (the finalizer runs): its retries are counted afresh, so a deletion
    # does not inherit the backoff of the syncs that failed before it.
    deleting: bool = False
    inventory: list[InventoryEntry] | None = None
    expected: dict[RefKey, str] = field(default_factory=dict)  # our fields hash per object
    # Objects an ignoreDifferences rule matches: their expected hash is blind to the
    # ignored fields, the watch's plain one is not. The plain hash a compare last found in
    # sync, so another writer's change (an HPA's replicas) wakes one reconcile, not one
    # per watch event of that object from then on (triggers.py).
    accepted: dict[RefKey, str] = field(default_factory=dict)
    status_hash: str = ""
    status_failing: bool = False  # the last status write failed (logged once)
    last_warning: str = ""
    logged_state: str = ""  # the failure reason last logged ("" = fine)
    heals: list[float] = field(default_factory=list)


class Memories:
    """Every Application's Memory, created on first use."""

    def __init__(self) -> None:
        self._memory: dict[AppKey, Memory] = {}
        self._lock = threading.Lock()

    def of(self, key: AppKey) -> Memory:
        with self._lock:
            return self._memory.setdefault(key, Memory())

    def get(self, key: AppKey) -> Memory | None:
        """`key`'s memory, or None when it has not been reconciled (or looked at) yet."""
        with self._lock:
            return self._memory.get(key)

    def forget(self, key: AppKey) -> None:
        with self._lock:
            self._memory.pop(key, None)
