"""Status of an Application: a working report filled during a reconcile, then one pure
function that turns it into the `status` written to the API server.

The controller fills a `Report` as it goes and, in a `finally`, always writes
`to_status(report, previous)`, so a failure anywhere still leaves a truthful status:
conditions Ready / Reconciling / Stalled (Flux), sync and health (Argo CD), resources,
inventory, observedGeneration, lastAppliedRevision, lastAttemptedRevision.
`lastTransitionTime` only moves when a condition's status changes.

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

Called by the controller; read by the CLI (`platform apps`, `platform status`).
"""

from __future__ import annotations

import base64
import gzip
import json
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from stacks.kube.conditions import condition, timestamp
from stacks.kube.health import Health, HealthStatus
from stacks.reconciler.plan import InventoryEntry

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
    return result
