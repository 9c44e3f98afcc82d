"""A small controller runtime: list+watch caches, a work queue, workers.

Used by the in-house controllers (secrets, certs, dns) so each one is only its reconcile
function. It is assembled from the same pieces the reconciler uses: `KindCache`
(stacks/kube/cache.py) lists, watches and caches each watched kind, and `WorkQueue`
(stacks/kube/queue.py) de-duplicates keys. Watched kinds map events to keys, workers call
`reconcile(key)`, and its result (or error kind) decides the requeue:

    return None / 0          done until the next event or the resync period
    return N (seconds)       come back after N seconds (e.g. a renewal time)
    raise WaitingError       come back after error.retry_after
    raise TransientError     exponential backoff per key (1s doubling to 5 min)
    raise PermanentError     logged; retried slowly (the object may be fixed by a person)
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from stacks.errors import PermanentError, PlatformError, WaitingError
from stacks.kube.cache import EventHandler, KindCache
from stacks.kube.client import KubeClient, WatchEvent
from stacks.kube.objects import KubeObject
from stacks.kube.queue import WorkQueue

log = logging.getLogger(__name__)

Key = Hashable
MAX_BACKOFF = 300.0
PERMANENT_RETRY = 60.0


@dataclass
class Watch:
    """Watch a kind and turn each event into keys to reconcile."""

    api_version: str
    kind: str
    to_keys: Callable[[WatchEvent], list[Key]]
    namespace: str | None = None
    label_selector: str | None = None
    # The informer's name in Controller.informers; two watches of one kind (say, managed
    # Secrets everywhere and CA Secrets in one namespace) need different names.
    name: str = ""

    @property
    def informer_name(self) -> str:
        return self.name or self.kind


@dataclass
class Controller:
    name: str
    client: KubeClient
    reconcile: Callable[[Key], float | None]
    watches: list[Watch]
    workers: int = 2
    resync_seconds: float = 300.0
    queue: WorkQueue[Key] = field(default_factory=WorkQueue)
    informers: dict[str, KindCache] = field(default_factory=dict)
    reconciles: int = 0
    errors: int = 0
    _failures: dict[Key, int] = field(default_factory=dict)
    # Set by run() once the informers exist, so wait_synced from another thread never
    # sees an empty informer table (and reports synced) before run() got going.
    _started: threading.Event = field(default_factory=threading.Event)

    def informer(self, name: str) -> KindCache:
        """The cache of a watch, by its informer name (the kind unless named)."""
        return self.informers[name]

    def run(self, stop: threading.Event) -> None:
        """Run until `stop` is set. Blocks; returns promptly after `stop` (the watches
        are cancelled, not waited out)."""
        for watch in self.watches:
            self.informers[watch.informer_name] = KindCache(
                self.client,
                watch.api_version,
                watch.kind,
                watch.label_selector,
                None,  # keep whole objects: reconcilers read any field
                self._handler(watch.to_keys),
                stop,
                persistent=True,  # a CRD installed later is picked up
                namespace=watch.namespace,
            )
        self._started.set()
        threads = [
            threading.Thread(
                target=self._work, args=(stop,), name=f"{self.name}-worker-{index}", daemon=True
            )
            for index in range(self.workers)
        ]
        threads.append(
            threading.Thread(target=self._seed, args=(stop,), name=f"{self.name}-seed", daemon=True)
        )
        threads.append(
            threading.Thread(
                target=self._resync, args=(stop,), name=f"{self.name}-resync", daemon=True
            )
        )
        for thread in threads:
            thread.start()
        stop.wait()
        self.queue.close()
        for informer in self.informers.values():
            informer.close()
        deadline = time.monotonic() + 5.0
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        for informer in self.informers.values():
            informer.join(timeout=max(0.0, deadline - time.monotonic()))

    def _handler(self, to_keys: Callable[[WatchEvent], list[Key]]) -> EventHandler:
        def handle(event_type: str, old: KubeObject | None, new: KubeObject | None) -> None:
            obj = new if new is not None else old
            if obj is not None:
                for key in to_keys(WatchEvent(event_type, obj)):
                    self.queue.add(key)

        return handle

    def _seed(self, stop: threading.Event) -> None:
        """Queue every object of each kind once its first list has arrived (the cache
        reports only changes after that)."""
        pending = dict(self.informers)
        while pending and not stop.is_set():
            for name, informer in list(pending.items()):
                if informer.listed.wait(0.2):
                    watch = next(w for w in self.watches if w.informer_name == name)
                    for obj in informer.items():
                        for key in watch.to_keys(WatchEvent("ADDED", obj)):
                            self.queue.add(key)
                    del pending[name]

    def wait_synced(self, timeout: float = 30.0) -> bool:
        """True once every watched kind has been listed (its CRD exists and may be read)."""
        deadline = time.monotonic() + timeout
        if not self._started.wait(timeout):
            return False
        return all(
            i.listed.wait(max(0.0, deadline - time.monotonic())) for i in self.informers.values()
        )

    def _resync(self, stop: threading.Event) -> None:
        while not stop.wait(self.resync_seconds * random.uniform(0.9, 1.1)):  # noqa: S311 - jitter
            for watch in self.watches:
                informer = self.informers[watch.informer_name]
                for obj in informer.items():
                    for key in watch.to_keys(WatchEvent("MODIFIED", obj)):
                        self.queue.add(key)

    def _work(self, stop: threading.Event) -> None:
        while not stop.is_set():
            key = self.queue.get(timeout=0.5)
            if key is None:
                continue
            try:
                after = self._reconcile_one(key)
                if after:
                    self.queue.add(key, delay=after)
            finally:
                self.queue.done(key)

    def _reconcile_one(self, key: Key) -> float | None:
        self.reconciles += 1
        try:
            after = self.reconcile(key)
        except WaitingError as error:
            log.info("%s %s: %s", self.name, key, error)
            return error.retry_after
        except PermanentError as error:
            self.errors += 1
            log.warning("%s %s: %s", self.name, key, error)
            return PERMANENT_RETRY
        except Exception as error:  # transient or a bug: back off per key
            self.errors += 1
            failures = self._failures.get(key, 0) + 1
            self._failures[key] = failures
            delay = min(MAX_BACKOFF, 2.0 ** (failures - 1))
            log.warning(
                "%s %s failed (retry in %.0fs): %s",
                self.name,
                key,
                delay,
                error,
                exc_info=not isinstance(error, PlatformError),
            )
            return delay
        self._failures.pop(key, None)
        return after


def object_key(event: WatchEvent) -> list[Key]:
    """The common mapping: an event's own (namespace, name)."""
    meta = event.object.get("metadata") or {}
    return [(str(meta.get("namespace") or ""), str(meta.get("name", "")))]
