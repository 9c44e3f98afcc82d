"""Conditions and status writes shared by the store and ExternalSecret reconcilers.

`set_condition` is pure (keeps `lastTransitionTime` when the status does not change);
`write_status` server-side-applies the whole status subresource, and only when it
differs from the live one, so an idle controller writes nothing.

Called by stacks.secrets.controller and stacks.secrets.stores.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, Protocol

from stacks.errors import PlatformError
from stacks.kube.objects import KubeObject
from stacks.secrets.api import FIELD_MANAGER, Condition

log = logging.getLogger(__name__)


class StatusWriter(Protocol):
    def apply_status(self, obj: KubeObject, field_manager: str) -> KubeObject: ...


def timestamp(when: float | None = None) -> str:
    moment = (
        dt.datetime.fromtimestamp(when, dt.UTC) if when is not None else dt.datetime.now(dt.UTC)
    )
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp()
    except ValueError:
        return None


def set_condition(
    conditions: list[Any] | None,
    type_: str,
    ready: bool,
    reason: str,
    message: str,
    now: str,
) -> list[Condition]:
    """`conditions` with `type_` replaced; the transition time moves only on a flip."""
    status = "True" if ready else "False"
    result: list[Condition] = []
    transition = now
    for existing in conditions or []:
        if existing.get("type") == type_:
            if existing.get("status") == status and existing.get("lastTransitionTime"):
                transition = str(existing["lastTransitionTime"])
            continue
        result.append(existing)
    result.append(
        Condition(
            type=type_, status=status, reason=reason, message=message, lastTransitionTime=transition
        )
    )
    return result


def ready_condition(obj: KubeObject) -> dict[str, Any] | None:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return dict(condition)
    return None


def write_status(client: StatusWriter, obj: KubeObject, status: dict[str, Any]) -> bool:
    """Apply `status` if it differs from the live one; True when something was written."""
    if (obj.get("status") or {}) == status:
        return False
    meta = obj.get("metadata") or {}
    body: KubeObject = {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "metadata": {"name": meta["name"]},
        "status": status,
    }
    if meta.get("namespace"):
        body["metadata"]["namespace"] = meta["namespace"]
    try:
        client.apply_status(body, FIELD_MANAGER)
    except PlatformError as error:
        where = f"{meta.get('namespace')}/{meta['name']}" if meta.get("namespace") else meta["name"]
        log.warning("failed to write status of %s '%s': %s", obj["kind"], where, error)
        if getattr(error, "status", 0) == 404:
            return False
        raise
    return True
