"""Apply: server-side apply of a plan's steps, one field manager, in kind order.

`Applier.apply_group(steps)` applies the steps of one kind group in parallel threads
(skipping unchanged ones) and returns one `ApplyOutcome` per step; the live answers go into
the live cache so health checks see them at once. After CRDs it waits for them to be
Established so custom resources of the same wave can follow. `wave_health` reports
whether a wave may be considered done (every object with a health check Healthy).

Called by the controller, which walks the waves and decides when to wait.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, cast

from stacks.errors import PermanentError, PlatformError, WaitingError
from stacks.kube.errors import ApiError
from stacks.kube.health import Health, HealthStatus, health_of, worst
from stacks.kube.objects import KubeObject, ObjectRef, annotations_of
from stacks.kube.waits import wait_crds_established
from stacks.reconciler.api import FIELD_MANAGER, IGNORE_HEALTH
from stacks.reconciler.options import object_options
from stacks.reconciler.plan import Action, Step, fields_hash

log = logging.getLogger(__name__)


class ApplyClient(Protocol):
    def apply(
        self, obj: KubeObject, field_manager: str, force: bool = True, dry_run: bool = False
    ) -> KubeObject: ...

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> KubeObject | None: ...

    def forget_discovery(self) -> None: ...

    # Replace=true (`replace`): a plain POST/PUT with our field manager
    def resource(self, api_version: str, kind: str) -> Any: ...
    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
        timeout: float = ...,
        what: str = "",
    ) -> Any: ...


@dataclass(frozen=True)
class ApplyOutcome:
    step: Step
    # fields_hash of the object the apply returned. Only the hash is kept: the object
    # itself is in the live cache, and a second copy per object of a 10,000-object sync
    # would be tens of MB (issue 14).
    fields: str = ""
    error: str = ""
    permanent: bool = False  # the API server refused the object itself (retrying won't help)

    @property
    def ok(self) -> bool:
        return not self.error


class Applier:
    def __init__(
        self,
        client: ApplyClient,
        remember: Callable[[KubeObject], None],
        workers: int = 8,
    ) -> None:
        self._client = client
        self._remember = remember
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="apply")

    def _apply_one(self, step: Step, client: ApplyClient | None = None) -> ApplyOutcome:
        try:
            obj = step.desired.obj
            if object_options(annotations_of(obj)).get("Replace") == "true":
                live = replace(client or self._client, obj)
            else:
                live = (client or self._client).apply(obj, FIELD_MANAGER, force=True)
        except ApiError as error:
            # DEBUG: the controller logs one line per Application (the first failures
            # are in it); a line per object would repeat on every retry of an outage.
            log.debug("failed to apply %s '%s': %s", step.ref.kind, _where(step.ref), error.message)
            return ApplyOutcome(step, "", error.message, isinstance(error, PermanentError))
        except PlatformError as error:
            log.debug("failed to apply %s '%s': %s", step.ref.kind, _where(step.ref), error)
            return ApplyOutcome(step, "", str(error), isinstance(error, PermanentError))
        fields = fields_hash(live)
        self._remember(live)
        return ApplyOutcome(step, fields)

    def apply_group(
        self, steps: Sequence[Step], client: ApplyClient | None = None
    ) -> list[ApplyOutcome]:
        """`client`: who applies (an impersonating client, policy.py); default the reconciler."""
        todo = [s for s in steps if s.action is not Action.UNCHANGED]
        if not todo:
            return []
        if len(todo) == 1:
            outcomes = [self._apply_one(todo[0], client)]
        else:
            outcomes = list(self._pool.map(lambda s: self._apply_one(s, client), todo))
        crds = [o for o in outcomes if o.ok and o.step.ref.kind == "CustomResourceDefinition"]
        if crds:
            self._wait_established([o.step.ref for o in crds], timeout=60.0)
        return outcomes

    def _wait_established(self, refs: Sequence[ObjectRef], timeout: float) -> None:
        try:
            wait_crds_established(self._client, [r.name for r in refs], timeout)
        except WaitingError as error:
            # The wave goes on: its custom resources fail to apply and say why.
            log.warning("%s", error)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def replace(client: ApplyClient, obj: KubeObject) -> KubeObject:
    """Replace=true (options.py): the object whole, as `kubectl replace` (PUT; POST when
    it does not exist), with our field manager, so fields others set on it are reset."""
    ref = ObjectRef.of(obj)
    info = client.resource(ref.api_version, ref.kind)
    query = {"fieldManager": FIELD_MANAGER}
    current = client.get(ref.api_version, ref.kind, ref.name, ref.namespace or None)
    if current is None:
        path = info.path(ref.namespace or None)
        return cast(KubeObject, client.request("POST", path, body=obj, query=query, what=str(ref)))
    body = dict(obj)
    body["metadata"] = {
        **obj["metadata"],
        "resourceVersion": (current.get("metadata") or {}).get("resourceVersion"),
    }
    path = info.path(ref.namespace or None, ref.name)
    return cast(KubeObject, client.request("PUT", path, body=body, query=query, what=str(ref)))


def _where(ref: ObjectRef) -> str:
    return f"{ref.namespace}/{ref.name}" if ref.namespace else ref.name


def object_health(live: KubeObject | None) -> Health | None:
    """Health of one managed object: Missing when absent, None when it has no health."""
    if live is None:
        return Health(HealthStatus.MISSING, "not found in the cluster")
    if annotations_of(live).get(IGNORE_HEALTH) == "true":
        return None
    return health_of(live)


def wave_health(
    steps: Sequence[Step], lookup: Callable[[ObjectRef], KubeObject | None]
) -> tuple[Health, list[tuple[ObjectRef, Health]]]:
    """The worst health in a wave, and the objects that are not Healthy yet."""
    waiting = []
    for step in steps:
        found = object_health(lookup(step.ref))
        if found is not None and not found.healthy:
            waiting.append((step.ref, found))
    return worst(h for _, h in waiting), waiting
