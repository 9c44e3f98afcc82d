"""Deleting an Application: prune what its inventory holds, then drop its finalizer.

`finalize` is the reconcile's step for an Application whose deletionTimestamp is set
(the sync steps do not run then). A deletion that cannot finish (its inventory
unreadable, live state not listed yet, a delete refused) raises `DeletionFailed`; the
reconcile's `finish` has `failed` say why in an Event and the Ready condition
(DeletionError), and the Runtime tries again on a backoff that starts at 1 s (capped
at 30 s: `RETRY`), counted apart from the sync failures before it.

A part of the controller (see parts.py).
"""

from __future__ import annotations

import contextlib
import logging

from stacks.errors import PlatformError, TransientError
from stacks.kube.controller import Result, Stop
from stacks.kube.errors import NotFound
from stacks.reconciler import prune as pruning
from stacks.reconciler.api import API_VERSION, FINALIZER, KIND
from stacks.reconciler.desired import Loader
from stacks.reconciler.parts import ControllerParts, Sync
from stacks.reconciler.plan import make_plan

log = logging.getLogger(__name__)


class DeletionFailed(TransientError):
    """The Application cannot be deleted yet; retried on the deletion's backoff."""


class Finalizer(ControllerParts):
    # A deletion's retries: from 1 s, doubling, at most every 30 s.
    RETRY = Result(max_backoff=30.0, first_backoff=1.0)

    def finalize(self, sync: Sync) -> Stop | None:
        """The finalize step: nothing while the Application is not being deleted; else
        prune what its inventory holds and drop our finalizer, and end the reconcile."""
        spec, obj, memory = sync.spec, sync.obj, sync.memory
        if not spec.deleting:
            return None
        sync.deleting = True
        if not memory.deleting:  # counted apart from the syncs that failed before
            memory.deleting = True
            self.shared.backoff.forget(spec.key)
        finalizers = list((obj.get("metadata") or {}).get("finalizers") or [])
        if FINALIZER not in finalizers:
            return Stop()
        try:
            inventory = (
                memory.inventory
                if memory.inventory is not None
                else Loader.inventory(obj.get("status") or {})
            )
            # Under load a watch may not have listed yet (TransientError): that is a retry
            # soon, with the reason in the status, never a silent "unexpected error".
            live, _ = self._live_state(e.ref for e in inventory)
            plan = make_plan(
                spec.key,
                [],
                live,
                inventory,
                prune=True,
                allow_empty=True,
                allow_mass_prune=True,
                deleting=True,  # Delete=false objects stay (options.py)
            )
            client = self.policy.client_for(obj)  # the project's identity (policy.py)
            result = pruning.prune(client, plan.prunes)
        except PlatformError as error:
            raise DeletionFailed(f"cannot read what to delete: {error}") from error
        if result.failed:
            ref, why = result.failed[0]
            raise DeletionFailed(f"failed to delete {ref}: {why}")
        self.events.record(
            obj, "Deleted", f"deleted {len(result.deleted)} object(s) with the Application"
        )
        remaining = [f for f in finalizers if f != FINALIZER]
        try:
            self.client.merge_patch(
                API_VERSION,
                KIND,
                spec.key.name,
                {
                    "metadata": {
                        "finalizers": remaining,
                        "resourceVersion": obj["metadata"]["resourceVersion"],
                    }
                },
                spec.key.namespace,
            )
        except NotFound:
            pass
        except PlatformError as error:
            log.warning("failed to update Application '%s': %s", spec.key, error)
            return Stop(1.0)
        return Stop()

    def failed(self, sync: Sync, error: Exception) -> Result:
        """Say why the Application cannot be deleted yet (event, Ready condition); the
        reconcile's result, retried on the deletion's backoff."""
        spec, obj = sync.spec, sync.obj
        message = f"{error}; will retry"
        self.events.record(obj, "DeletionFailed", message, warning=True)
        with contextlib.suppress(PlatformError):
            self.client.merge_patch(
                API_VERSION,
                KIND,
                spec.key.name,
                {
                    "status": {
                        "conditions": [
                            {
                                "type": "Ready",
                                "status": "False",
                                "reason": "DeletionError",
                                "message": message,
                            }
                        ]
                    }
                },
                spec.key.namespace,
                subresource="/status",
            )
        return Result(
            error=error,
            max_backoff=self.RETRY.max_backoff,
            first_backoff=self.RETRY.first_backoff,
            logged=True,
        )
