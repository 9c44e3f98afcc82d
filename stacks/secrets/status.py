"""Conditions and status writes shared by the store and ExternalSecret reconcilers.

`set_condition` is pure (keeps `lastTransitionTime` when the status does not change);
`write_status` server-side-applies the whole status subresource, and only when it
differs from the live one, so an idle controller writes nothing.

Called by stacks.secrets.controller and stacks.secrets.stores.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol, cast

from stacks.errors import PlatformError
from stacks.kube import conditions
from stacks.kube.objects import KubeObject
from stacks.secrets.api import FIELD_MANAGER, Condition

log = logging.getLogger(__name__)


class StatusWriter(Protocol):
    def apply_status(self, obj: KubeObject, field_manager: str) -> KubeObject: ...


def timestamp(when: float | None = None) -> str:
    return conditions.timestamp(when)


def parse_timestamp(text: str | None) -> float | None:
    moment = conditions.parse_timestamp(text)
    return moment.timestamp() if moment is not None else None


def set_condition(
    existing: list[Any] | None,
    type_: str,
    ready: bool,
    reason: str,
    message: str,
    now: str,
) -> list[Condition]:
    """`existing` with `type_` replaced; the transition time moves only on a flip."""
    new = conditions.condition(type_, ready, reason, message, now, existing or [])
    return cast(list[Condition], conditions.set_condition(existing, new))


def ready_condition(obj: KubeObject) -> dict[str, Any] | None:
    return conditions.find((obj.get("status") or {}).get("conditions"), "Ready")


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
