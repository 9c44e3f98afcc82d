"""Prune: delete what left the repository, strictly from the plan's prune list.

The plan (plan.py) decides what may be pruned (inventory only, tracking id, protected
kinds, breaker); this module only executes it, highest-ranked kinds first, and reports
each delete. A failed delete is returned so the controller keeps that entry in the
inventory and tries again next time. Also used by the cascade-delete finalizer.

Called by the controller.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from stacks.errors import PlatformError
from stacks.kube.objects import ObjectRef
from stacks.reconciler.plan import PruneStep

log = logging.getLogger(__name__)


class DeleteClient(Protocol):
    def delete_ref(self, ref: ObjectRef, propagation: str = "Background") -> bool: ...


@dataclass(frozen=True)
class PruneResult:
    deleted: tuple[ObjectRef, ...]
    gone: tuple[ObjectRef, ...]  # already absent
    failed: tuple[tuple[ObjectRef, str], ...]


def prune(
    client: DeleteClient, steps: Sequence[PruneStep], propagation: str = "Background"
) -> PruneResult:
    deleted: list[ObjectRef] = []
    gone: list[ObjectRef] = []
    failed: list[tuple[ObjectRef, str]] = []
    for step in steps:
        ref = step.ref
        try:
            if client.delete_ref(ref, propagation):
                deleted.append(ref)
                log.info("pruned %s", ref)
            else:
                gone.append(ref)
        except PlatformError as error:
            where = f"{ref.namespace}/{ref.name}" if ref.namespace else ref.name
            # DEBUG: the controller's PruneFailed line (one per Application) names it.
            log.debug("failed to delete %s '%s': %s", ref.kind, where, error)
            failed.append((ref, str(error)))
    return PruneResult(tuple(deleted), tuple(gone), tuple(failed))
