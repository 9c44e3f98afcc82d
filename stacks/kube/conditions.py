"""Status conditions (metav1.Condition): the one builder the controllers share.

    condition(type, status, reason, message, now, previous, generation)  one condition
    set_condition(conditions, new)        the list with `new` in place of its type
    status_equal(old, new)                same status apart from transition times

`lastTransitionTime` moves only when the condition's status flips (kstatus/Flux rule),
so an idle controller rewrites nothing. Pure: `now` is passed in.

Called by the controller runtime's users: stacks.secrets (ExternalSecret and store
Ready), stacks.certs (Issuer and Certificate Ready), stacks.reconciler.status
(Application Ready, Reconciling, Stalled).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

MAX_MESSAGE = 2000  # a message longer than this is noise in `kubectl describe`


def timestamp(moment: dt.datetime | float | None = None) -> str:
    """RFC 3339 seconds in UTC, the form the API server stores for metav1.Time."""
    if moment is None:
        moment = dt.datetime.now(dt.UTC)
    elif isinstance(moment, int | float):
        moment = dt.datetime.fromtimestamp(moment, dt.UTC)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(text: str | None) -> dt.datetime | None:
    """The inverse of `timestamp`; None for a missing or malformed value."""
    if not text:
        return None
    try:
        return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    except (TypeError, ValueError):
        return None


def condition(
    type_: str,
    status: bool | str,
    reason: str,
    message: str,
    now: str,
    previous: Iterable[Mapping[str, Any]] = (),
    generation: int | None = None,
) -> dict[str, Any]:
    """One condition; its transition time is kept from `previous` unless status flips."""
    value = status if isinstance(status, str) else ("True" if status else "False")
    stamp = now
    for old in previous:
        if old.get("type") == type_ and old.get("status") == value:
            stamp = str(old.get("lastTransitionTime") or now)
    built: dict[str, Any] = {
        "type": type_,
        "status": value,
        "reason": reason,
        "message": message[:MAX_MESSAGE],
        "lastTransitionTime": stamp,
    }
    if generation is not None:
        built["observedGeneration"] = generation
    return built


def set_condition(
    conditions: Iterable[Mapping[str, Any]] | None, new: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """`conditions` without any of `new`'s type, then `new` (last, as before)."""
    kept = [dict(c) for c in conditions or [] if c.get("type") != new.get("type")]
    kept.append(dict(new))
    return kept


def find(conditions: Iterable[Mapping[str, Any]] | None, type_: str) -> dict[str, Any] | None:
    for existing in conditions or []:
        if existing.get("type") == type_:
            return dict(existing)
    return None


def status_equal(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Same status apart from transition times (which only move on a flip)."""

    def strip(status: Mapping[str, Any]) -> dict[str, Any]:
        copy = {k: v for k, v in status.items() if k != "conditions"}
        copy["conditions"] = sorted(
            (
                {k: v for k, v in c.items() if k != "lastTransitionTime"}
                for c in status.get("conditions") or []
            ),
            key=lambda c: str(c.get("type")),
        )
        return copy

    return strip(old) == strip(new)
