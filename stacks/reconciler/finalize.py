"""Deleting an Application: prune what its inventory holds, then drop its finalizer.

A deletion that cannot finish (its inventory unreadable, live state not listed yet, a
delete refused) says why in an Event and the Ready condition (DeletionError) and tries
again on a backoff that starts at 1 s (stacks/kube/backoff.py, capped at 30 s), counted
apart from the sync failures before it.

A mixin of AppController (see parts.py).
"""

from __future__ import annotations

import contextlib
import logging

from stacks.errors import PlatformError
from stacks.kube import backoff
from stacks.kube.errors import NotFound
from stacks.kube.objects import KubeObject
from stacks.reconciler import prune as pruning
from stacks.reconciler.api import API_VERSION, FINALIZER, KIND, AppSpec
from stacks.reconciler.desired import Loader
from stacks.reconciler.memory import Memory
from stacks.reconciler.parts import ControllerParts
from stacks.reconciler.plan import make_plan

log = logging.getLogger(__name__)


class Finalizer(ControllerParts):
    def _finalize(self, spec: AppSpec, obj: KubeObject, memory: Memory) -> None:
        finalizers = list((obj.get("metadata") or {}).get("finalizers") or [])
        if FINALIZER not in finalizers:
            return
        try:
            inventory = (
                memory.inventory
                if memory.inventory is not None
                else Loader.inventory(obj.get("status") or {})
            )
            # Under load a watch may not have listed yet (TransientError): that is a retry
            # soon, with the reason in the status, never a silent 10 s "unexpected error".
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
            self._deletion_failed(spec, obj, memory, f"cannot read what to delete: {error}")
            return
        if result.failed:
            ref, why = result.failed[0]
            self._deletion_failed(spec, obj, memory, f"failed to delete {ref}: {why}")
            return
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
            self.queue.add(spec.key, delay=1.0)

    def _deletion_failed(self, spec: AppSpec, obj: KubeObject, memory: Memory, cause: str) -> None:
        """Say why the Application cannot be deleted yet (event, Ready condition) and try
        again on a backoff that starts at 1 s."""
        message = f"{cause}; will retry"
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
        memory.deletion_failures += 1
        self.queue.add(spec.key, delay=backoff.delay(memory.deletion_failures, 30.0))
