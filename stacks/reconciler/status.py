"""Status of an Application: a working report filled during a reconcile, then one pure
function that turns it into the `status` written to the API server.

The controller fills a `Report` as it goes and, in a `finally`, always writes
`to_status(report, previous)`, so a failure anywhere still leaves a truthful status:
conditions Ready / Reconciling / Stalled (Flux), sync and health (Argo CD), resources,
inventory, observedGeneration, lastAppliedRevision, lastAttemptedRevision.
`lastTransitionTime` only moves when a condition's status changes.

Called by the controller; read by the CLI (`platform apps`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from stacks.kube.health import Health, HealthStatus
from stacks.reconciler.plan import InventoryEntry


class SyncStatus(StrEnum):
    SYNCED = "Synced"
    OUT_OF_SYNC = "OutOfSync"
    UNKNOWN = "Unknown"


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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


def _condition(
    type_: str,
    status: str,
    reason: str,
    message: str,
    generation: int,
    previous: list[dict[str, Any]],
) -> dict[str, Any]:
    old = next((c for c in previous if c.get("type") == type_), None)
    changed = old is None or old.get("status") != status
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message[:2000],
        "observedGeneration": generation,
        "lastTransitionTime": now() if changed else old.get("lastTransitionTime", now()),  # type: ignore[union-attr]
    }


def to_status(report: Report, previous: dict[str, Any]) -> dict[str, Any]:
    """The full status object for `report`, carrying forward what this run did not learn."""
    old_conditions = list(previous.get("conditions") or [])
    ready_status, ready_reason, ready_message = report.ready
    conditions = [
        _condition(
            "Ready", ready_status, ready_reason, ready_message, report.generation, old_conditions
        )
    ]
    conditions.append(
        _condition(
            "Reconciling",
            "True" if report.reconciling else "False",
            "Progressing" if report.reconciling else "Idle",
            report.reconciling,
            report.generation,
            old_conditions,
        )
    )
    stalled_reason, stalled_message = report.stalled or ("", "")
    conditions.append(
        _condition(
            "Stalled",
            "True" if report.stalled else "False",
            stalled_reason or "NotStalled",
            stalled_message,
            report.generation,
            old_conditions,
        )
    )
    for type_, status, reason, message in report.extra_conditions:
        conditions.append(
            _condition(type_, status, reason, message, report.generation, old_conditions)
        )
    old_health = previous.get("health") or {}
    health = {
        "status": str(report.health.status),
        "message": report.health.message[:1000],
        "lastTransitionTime": old_health.get("lastTransitionTime", now())
        if old_health.get("status") == str(report.health.status)
        else now(),
    }
    result: dict[str, Any] = {
        "observedGeneration": report.generation,
        "sync": {
            "status": str(report.sync),
            "revision": report.revision or (previous.get("sync") or {}).get("revision", ""),
            "comparedTo": {"source": report.source, "destination": report.destination},
        },
        "health": health,
        "conditions": conditions,
        "resources": report.resources
        if report.resources or report.inventory is not None
        else previous.get("resources", []),
        "inventory": [e.to_json() for e in report.inventory]
        if report.inventory is not None
        else previous.get("inventory", []),
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
    if report.summary:
        result["summary"] = dict(report.summary)
    return result
