"""Status of an Application: a working report filled during a reconcile, then one pure
function that turns it into the `status` written to the API server.

The controller fills a `Report` as it goes and, in a `finally`, always writes
`to_status(report, previous)`, so a failure anywhere still leaves a truthful status:
conditions Ready / Reconciling / Stalled (Flux), sync and health (Argo CD), resources,
inventory, observedGeneration, lastAppliedRevision, lastAttemptedRevision.
`lastTransitionTime` only moves when a condition's status changes (conditions are
built by stacks/kube/conditions.py).

The rest of status building is here too, all pure: `describe` (resources, sync, health
and Ready from a plan and what was applied; live objects through a lookup the caller
passes), `new_inventory` (the inventory after a sync), `status_digest` (a status equal
but for transition times is not written again) and `app_state` (the part of an
Application's status its dependants and parents react to).

The status is bounded so an Application stays far below etcd's object size limit
(1.5 MiB) however many objects it manages: `resourceCounts` counts every object (sync,
requiresPruning, health), and `resources[]` lists every object only while there are
at most FULL_RESOURCES of them; beyond that it lists only the objects that are not
Synced or not Healthy, at most MAX_LISTED, and `resourcesOmitted` says how many entries
were left out. Readers that look for what is wrong (`platform status`, the bootstrap's
waits) find it in the list either way.

The inventory (what pruning may delete; one entry per object, about 100 bytes as JSON)
must hold every object, so it is kept compact instead of cut: up to INLINE_INVENTORY
entries it is the readable list `inventory[]` (Flux's `{id, v}` plus our hashes);
beyond that the same entries are gzip-compressed JSON in `inventoryCompressed`
(`{count, encoding: gzip+base64, data}`; about 19 bytes per object, so 10,000 objects
take about 190 KB and an Application reaches etcd's limit only near 80,000). Read it
with `kubectl get application NAME -o jsonpath='{.status.inventoryCompressed.data}' |
base64 -d | gunzip`. Exactly one of the two fields is set; `read_inventory` reads
either (and the plain list of older versions), so every reader of the inventory
(controller, prune on delete, `platform diff`, `platform down`) goes through it.

Called by the controller (parts.py, controller.py); read by the CLI (`platform apps`,
`platform status`).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from stacks.kube.conditions import condition, timestamp
from stacks.kube.health import Health, HealthStatus, worst
from stacks.kube.objects import KubeObject, ObjectRef, condition_of
from stacks.reconciler.apply import ApplyOutcome, object_health
from stacks.reconciler.plan import Action, InventoryEntry, Plan
from stacks.reconciler.prune import PruneResult

if TYPE_CHECKING:
    from stacks.kube.cache import RefKey

# Up to this many objects every one is listed, as Argo CD does (small apps read fully).
FULL_RESOURCES = 200
# Beyond that, at most this many of the objects that are not Synced or not Healthy.
MAX_LISTED = 100
# Up to this many inventory entries the inventory is a readable list (about 20 KB).
INLINE_INVENTORY = 200
INVENTORY_ENCODING = "gzip+base64"
# A compressed inventory inflates to about 100 bytes per object: this allows far more
# than any status can hold, and refuses a hand-made gzip bomb in a status.
MAX_INVENTORY_BYTES = 64 * 1024 * 1024


class InventoryUnreadable(ValueError):
    """The status holds an inventory that cannot be decoded (written by hand?)."""


class SyncStatus(StrEnum):
    SYNCED = "Synced"
    OUT_OF_SYNC = "OutOfSync"
    UNKNOWN = "Unknown"


@dataclass
class Report:
    """What one reconcile found and did (a mutable working record, not an API value)."""

    generation: int
    source: dict[str, Any]
    destination: dict[str, Any]
    revision: str = ""
    sync: SyncStatus = SyncStatus.UNKNOWN
    health: Health = field(default_factory=lambda: Health(HealthStatus.UNKNOWN, ""))
    ready: tuple[str, str, str] = ("Unknown", "Progressing", "reconciliation in progress")
    reconciling: str = ""  # message while a sync is under way (waves)
    stalled: tuple[str, str] | None = None  # (reason, message): a person must act
    resources: list[dict[str, Any]] = field(default_factory=list)
    inventory: list[InventoryEntry] | None = None  # None = keep the previous inventory
    last_applied_revision: str | None = None
    last_attempted_revision: str | None = None
    handled_refresh: str | None = None
    summary: dict[str, int] = field(default_factory=dict)
    extra_conditions: list[tuple[str, str, str, str]] = field(default_factory=list)
    # status.hooks (hooks.summary: the last operation's phase and hooks, bounded);
    # None = keep what the previous status said
    hooks: dict[str, Any] | None = None

    def fail(self, reason: str, message: str, stalled: bool = False) -> None:
        self.ready = ("False", reason, message)
        if stalled:
            self.stalled = (reason, message)


def _needs_attention(entry: dict[str, Any]) -> bool:
    health = (entry.get("health") or {}).get("status")
    return entry.get("status") != "Synced" or health not in (None, "Healthy")


def count_resources(resources: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts over every object: the part of the status that does not grow with them."""
    health: dict[str, int] = {}
    for entry in resources:
        state = (entry.get("health") or {}).get("status")
        if state:
            health[state] = health.get(state, 0) + 1
    return {
        "total": len(resources),
        "synced": sum(1 for e in resources if e.get("status") == "Synced"),
        "outOfSync": sum(1 for e in resources if e.get("status") != "Synced"),
        "requiresPruning": sum(1 for e in resources if e.get("requiresPruning")),
        "health": dict(sorted(health.items())),
    }


def bound_resources(resources: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """The entries to list and how many were left out (see the module docstring)."""
    if len(resources) <= FULL_RESOURCES:
        return resources, 0
    listed = [e for e in resources if _needs_attention(e)][:MAX_LISTED]
    return listed, len(resources) - len(listed)


def inventory_status(entries: list[InventoryEntry]) -> dict[str, Any]:
    """The two inventory fields of a status for `entries`: one set, the other None (a
    null in the merge patch removes the form the previous status may have used)."""
    raw = [e.to_json() for e in entries]
    if len(raw) <= INLINE_INVENTORY:
        return {"inventory": raw, "inventoryCompressed": None}
    text = json.dumps(raw, separators=(",", ":"))
    # mtime=0: the same inventory always encodes the same, so an unchanged status is
    # recognised as unchanged and not written again.
    data = gzip.compress(text.encode(), compresslevel=6, mtime=0)
    return {
        "inventory": None,
        "inventoryCompressed": {
            "count": len(raw),
            "encoding": INVENTORY_ENCODING,
            "data": base64.b64encode(data).decode("ascii"),
        },
    }


def read_inventory(status: Mapping[str, Any]) -> list[InventoryEntry]:
    """The inventory recorded in an Application's `status`, whichever form it has.

    Raises InventoryUnreadable when the compressed form does not decode."""
    packed = status.get("inventoryCompressed")
    if not packed:
        return [InventoryEntry.from_json(e) for e in status.get("inventory") or [] if e.get("id")]
    try:
        if packed.get("encoding") != INVENTORY_ENCODING:
            raise ValueError(f"unknown encoding {packed.get('encoding')!r}")
        inflater = zlib.decompressobj(wbits=31)  # 31: gzip framing
        text = inflater.decompress(base64.b64decode(packed["data"]), MAX_INVENTORY_BYTES)
        if inflater.unconsumed_tail:
            raise ValueError(f"larger than {MAX_INVENTORY_BYTES} bytes inflated")
        raw = json.loads(text)
        entries = [InventoryEntry.from_json(e) for e in raw if e.get("id")]
    except (ValueError, KeyError, TypeError, AttributeError, zlib.error) as error:
        raise InventoryUnreadable(f"status.inventoryCompressed cannot be read: {error}") from error
    return entries


def to_status(report: Report, previous: dict[str, Any]) -> dict[str, Any]:
    """The full status object for `report`, carrying forward what this run did not learn."""
    old_conditions = list(previous.get("conditions") or [])
    now = timestamp()
    generation = report.generation

    def built(type_: str, status: str, reason: str, message: str) -> dict[str, Any]:
        return condition(type_, status, reason, message, now, old_conditions, generation)

    ready_status, ready_reason, ready_message = report.ready
    conditions = [built("Ready", ready_status, ready_reason, ready_message)]
    conditions.append(
        built(
            "Reconciling",
            "True" if report.reconciling else "False",
            "Progressing" if report.reconciling else "Idle",
            report.reconciling,
        )
    )
    stalled_reason, stalled_message = report.stalled or ("", "")
    conditions.append(
        built(
            "Stalled",
            "True" if report.stalled else "False",
            stalled_reason or "NotStalled",
            stalled_message,
        )
    )
    for type_, status, reason, message in report.extra_conditions:
        conditions.append(built(type_, status, reason, message))
    old_health = previous.get("health") or {}
    health = {
        "status": str(report.health.status),
        "message": report.health.message[:1000],
        "lastTransitionTime": old_health.get("lastTransitionTime", now)
        if old_health.get("status") == str(report.health.status)
        else now,
    }
    learned = bool(report.resources) or report.inventory is not None
    if learned:
        resources, omitted = bound_resources(report.resources)
        counts = count_resources(report.resources)
    else:  # this run compared nothing: keep what the last one said
        resources = previous.get("resources", [])
        omitted = int(previous.get("resourcesOmitted") or 0)
        counts = previous.get("resourceCounts") or count_resources(resources)
    result: dict[str, Any] = {
        "observedGeneration": report.generation,
        "sync": {
            "status": str(report.sync),
            "revision": report.revision or (previous.get("sync") or {}).get("revision", ""),
            "comparedTo": {"source": report.source, "destination": report.destination},
        },
        "health": health,
        "conditions": conditions,
        "resources": resources,
        "resourceCounts": counts,
        "resourcesOmitted": omitted,
        "lastAppliedRevision": report.last_applied_revision
        if report.last_applied_revision is not None
        else previous.get("lastAppliedRevision", ""),
        "lastAttemptedRevision": report.last_attempted_revision
        if report.last_attempted_revision is not None
        else previous.get("lastAttemptedRevision", ""),
        "lastHandledRefresh": report.handled_refresh
        if report.handled_refresh is not None
        else previous.get("lastHandledRefresh", ""),
    }
    if report.inventory is not None:
        result.update(inventory_status(report.inventory))
    else:  # kept as it was, in the form it was
        result["inventory"] = previous.get("inventory", [])
        if previous.get("inventoryCompressed"):
            result["inventory"] = None
            result["inventoryCompressed"] = previous["inventoryCompressed"]
    if report.summary:
        result["summary"] = dict(report.summary)
    if report.hooks is not None:
        result["hooks"] = report.hooks or None  # null: the merge patch removes it
    elif previous.get("hooks"):
        result["hooks"] = previous["hooks"]
    return result


def new_inventory(
    old_entries: Iterable[InventoryEntry],
    plan: Plan,
    outcomes: Sequence[ApplyOutcome],
    pruned: PruneResult,
) -> list[InventoryEntry]:
    """The inventory after a sync: every planned object (applied now, or as recorded),
    then recorded ones not planned that were neither pruned, gone nor orphaned."""
    old = {e.ref.key: e for e in old_entries}
    applied = {o.step.ref.key: o for o in outcomes if o.ok}
    entries: list[InventoryEntry] = []
    wanted = set()
    for step in plan.steps:
        key = step.ref.key
        wanted.add(key)
        if key in applied:
            entries.append(InventoryEntry(step.ref, step.desired.hash, applied[key].fields))
        elif key in old:
            entries.append(old[key])
    dropped = (
        {r.key for r in pruned.deleted}
        | {r.key for r in pruned.gone}
        | {p.ref.key for p in plan.orphans}
    )
    for key, entry in old.items():
        if key not in wanted and key not in dropped:
            entries.append(entry)
    return entries


def describe(
    report: Report,
    plan: Plan,
    outcomes: Sequence[ApplyOutcome],
    objects: Mapping[RefKey, KubeObject | None],
    lookup: Callable[[ObjectRef], KubeObject | None],
    applied: bool,
    pruned: PruneResult | None = None,
) -> bool:
    """Fill resources, sync and health; True when everything is in sync now.

    Objects that still need pruning (held back, not reached, or whose delete failed)
    are listed with requiresPruning and make the app OutOfSync, as in Argo CD."""
    ok = {o.step.ref.key for o in outcomes if o.ok}
    resources = []
    healths: list[Health] = []
    live_count = 0
    out_of_sync: list[str] = []
    for step in plan.steps:
        ref = step.ref
        current = lookup(ref) if ref.key in ok else objects.get(ref.key)
        synced = step.action is Action.UNCHANGED or ref.key in ok
        if not synced:
            out_of_sync.append(f"{ref} {step.reason}")
        entry: dict[str, Any] = {
            "group": ref.group,
            "version": ref.version,
            "kind": ref.kind,
            "namespace": ref.namespace,
            "name": ref.name,
            "status": "Synced" if synced else "OutOfSync",
            "syncWave": step.desired.wave,
        }
        health = object_health(current)
        if current is not None:
            live_count += 1
        if health is not None:
            entry["health"] = {"status": str(health.status), "message": health.message[:300]}
            if health.status is not HealthStatus.MISSING:
                healths.append(health)
        resources.append(entry)
    done: set[RefKey] = set()
    if pruned is not None:
        done = {r.key for r in pruned.deleted} | {r.key for r in pruned.gone}
    for item in [*plan.pending_prunes, *plan.prunes]:
        ref = item.ref
        if ref.key in done:
            continue
        resources.append(
            {
                "group": ref.group,
                "version": ref.version,
                "kind": ref.kind,
                "namespace": ref.namespace,
                "name": ref.name,
                "status": "OutOfSync",
                "requiresPruning": True,
            }
        )
        out_of_sync.append(f"{ref} requires pruning")
    report.resources = resources
    in_sync = not out_of_sync
    report.sync = SyncStatus.SYNCED if in_sync else SyncStatus.OUT_OF_SYNC
    if plan.steps and live_count == 0:
        report.health = Health(HealthStatus.MISSING, "none of the application's objects exists yet")
    else:
        overall = worst(healths)
        if overall.healthy:
            overall = Health(HealthStatus.HEALTHY, f"{len(plan.steps)} objects healthy")
        report.health = overall
    if report.reconciling:
        report.ready = ("Unknown", "Progressing", report.reconciling)
    elif not in_sync:
        reason = "OutOfSync"
        hint = "" if applied else " (selfHeal is off: `platform sync` applies it)"
        report.ready = (
            "False",
            reason,
            f"{len(out_of_sync)} object(s) differ from git{hint}: " + "; ".join(out_of_sync[:3]),
        )
    elif report.health.status is HealthStatus.HEALTHY:
        report.ready = (
            "True",
            "Succeeded",
            f"applied revision {report.revision[:12]}: {report.health.message}",
        )
    elif report.health.status in (
        HealthStatus.PROGRESSING,
        HealthStatus.MISSING,
        HealthStatus.SUSPENDED,
    ):
        report.ready = ("Unknown", "Progressing", report.health.message)
    else:
        report.ready = ("False", "HealthCheckFailed", report.health.message)
    return in_sync


def status_digest(status: Mapping[str, Any]) -> str:
    """A digest of `status` apart from transition times: equal digests, nothing to write."""
    comparable = json.dumps(_without_times(status), sort_keys=True, default=str)
    return hashlib.sha256(comparable.encode()).hexdigest()


def _without_times(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_times(v) for k, v in value.items() if k != "lastTransitionTime"}
    if isinstance(value, list):
        return [_without_times(v) for v in value]
    return value


def app_state(obj: KubeObject | None) -> tuple[Any, ...]:
    if obj is None:
        return ()
    status = obj.get("status") or {}
    ready = condition_of(obj, "Ready") or {}
    return (
        (status.get("health") or {}).get("status"),
        (status.get("sync") or {}).get("status"),
        ready.get("status"),
        status.get("observedGeneration"),
    )
