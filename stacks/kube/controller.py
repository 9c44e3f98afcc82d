"""A small controller runtime: informers (list + watch + cache), a work queue, workers.

Used by the in-house controllers (secrets, certs, dns, the unsealer) so each one is only
its reconcile function. The shape follows controller-runtime: watched kinds map events to
keys, a rate-limited queue de-duplicates keys, workers call `reconcile(key)`, and its
result (or error kind) decides the requeue:

    return None / 0          done until the next event or the resync period
    return N (seconds)       come back after N seconds (e.g. a renewal time)
    raise WaitingError       come back after error.retry_after
    raise TransientError     exponential backoff per key (1s doubling to 5 min)
    raise PermanentError     logged; retried slowly (the object may be fixed by a person)
"""

from __future__ import annotations

import heapq
import logging
import random
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from stacks.errors import PermanentError, PlatformError, WaitingError
from stacks.kube.client import KubeClient, WatchEvent
from stacks.kube.errors import NotFound
from stacks.kube.objects import KubeObject

log = logging.getLogger(__name__)

Key = Hashable
MAX_BACKOFF = 300.0
PERMANENT_RETRY = 60.0


class WorkQueue:
    """Keys to reconcile; a key is never processed by two workers at once."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._ready: list[Key] = []
        self._queued: set[Key] = set()
        self._processing: set[Key] = set()
        self._dirty: set[Key] = set()
        self._delayed: list[tuple[float, int, Key]] = []
        self._counter = 0
        self._shutdown = False

    def add(self, key: Key, after: float = 0.0) -> None:
        with self._cond:
            if after > 0:
                self._counter += 1
                heapq.heappush(self._delayed, (time.monotonic() + after, self._counter, key))
            elif key in self._processing:
                self._dirty.add(key)
            elif key not in self._queued:
                self._queued.add(key)
                self._ready.append(key)
            self._cond.notify()

    def get(self, timeout: float = 1.0) -> Key | None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._shutdown:
                self._promote_delayed()
                if self._ready:
                    key = self._ready.pop(0)
                    self._queued.discard(key)
                    self._processing.add(key)
                    return key
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                wake = remaining
                if self._delayed:
                    wake = min(wake, max(0.0, self._delayed[0][0] - time.monotonic()))
                self._cond.wait(wake)
            return None

    def _promote_delayed(self) -> None:
        now = time.monotonic()
        while self._delayed and self._delayed[0][0] <= now:
            _, _, key = heapq.heappop(self._delayed)
            if key in self._processing:
                self._dirty.add(key)
            elif key not in self._queued:
                self._queued.add(key)
                self._ready.append(key)

    def done(self, key: Key) -> None:
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                self._dirty.discard(key)
                if key not in self._queued:
                    self._queued.add(key)
                    self._ready.append(key)
                self._cond.notify()

    def depth(self) -> int:
        with self._cond:
            return len(self._ready) + len(self._delayed)

    def shutdown(self) -> None:
        with self._cond:
            self._shutdown = True
            self._cond.notify_all()


class Informer:
    """List then watch one kind, keep a cache, call `on_event` for every change."""

    def __init__(
        self,
        client: KubeClient,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> None:
        self.client = client
        self.api_version = api_version
        self.kind = kind
        self.namespace = namespace
        self.label_selector = label_selector
        self.handlers: list[Callable[[WatchEvent], None]] = []
        self.synced = threading.Event()
        self._cache: dict[tuple[str, str], KubeObject] = {}
        self._lock = threading.Lock()

    def get(self, namespace: str, name: str) -> KubeObject | None:
        with self._lock:
            return self._cache.get((namespace, name))

    def items(self) -> list[KubeObject]:
        with self._lock:
            return list(self._cache.values())

    def _store(self, event: WatchEvent) -> None:
        meta = event.object.get("metadata") or {}
        key = (str(meta.get("namespace") or ""), str(meta.get("name", "")))
        with self._lock:
            if event.type == "DELETED":
                self._cache.pop(key, None)
            else:
                self._cache[key] = event.object

    def _dispatch(self, event: WatchEvent) -> None:
        for handler in self.handlers:
            try:
                handler(event)
            except Exception:
                log.exception("event handler for %s failed", self.kind)

    def run(self, stop: threading.Event) -> None:
        backoff = 1.0
        while not stop.is_set():
            try:
                items, version = self.client.list_with_version(
                    self.api_version, self.kind, self.namespace, self.label_selector
                )
                fresh = {
                    (str(i["metadata"].get("namespace") or ""), str(i["metadata"]["name"])): i
                    for i in items
                }
                with self._lock:
                    gone = [obj for key, obj in self._cache.items() if key not in fresh]
                    self._cache = dict(fresh)
                self.synced.set()
                for obj in gone:
                    self._dispatch(WatchEvent("DELETED", obj))
                for obj in items:
                    self._dispatch(WatchEvent("ADDED", obj))
                backoff = 1.0
                while not stop.is_set():
                    for event in self.client.watch(
                        self.api_version,
                        self.kind,
                        self.namespace,
                        resource_version=version,
                        timeout_seconds=60,
                        label_selector=self.label_selector,
                    ):
                        if event.type == "BOOKMARK":
                            version = str(event.object["metadata"].get("resourceVersion", version))
                            continue
                        version = str(event.object["metadata"].get("resourceVersion", version))
                        self._store(event)
                        self._dispatch(event)
                        if stop.is_set():
                            return
            except NotFound:
                # The kind is not served (yet): its CRD may arrive later.
                stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
            except PlatformError as error:
                if getattr(error, "reason", "") != "Expired":
                    log.warning(
                        "watch of %s interrupted: %s (retrying in %.0fs)", self.kind, error, backoff
                    )
                    stop.wait(backoff)
                    backoff = min(backoff * 2, 30.0)


@dataclass
class Watch:
    """Watch a kind and turn each event into keys to reconcile."""

    api_version: str
    kind: str
    to_keys: Callable[[WatchEvent], list[Key]]
    namespace: str | None = None
    label_selector: str | None = None


@dataclass
class Controller:
    name: str
    client: KubeClient
    reconcile: Callable[[Key], float | None]
    watches: list[Watch]
    workers: int = 2
    resync_seconds: float = 300.0
    queue: WorkQueue = field(default_factory=WorkQueue)
    informers: dict[str, Informer] = field(default_factory=dict)
    reconciles: int = 0
    errors: int = 0
    _failures: dict[Key, int] = field(default_factory=dict)

    def informer(self, kind: str) -> Informer:
        return self.informers[kind]

    def run(self, stop: threading.Event) -> None:
        """Run until `stop` is set. Blocks."""
        threads: list[threading.Thread] = []
        for watch in self.watches:
            informer = self.informers.get(watch.kind) or Informer(
                self.client, watch.api_version, watch.kind, watch.namespace, watch.label_selector
            )
            self.informers[watch.kind] = informer

            def handler(
                event: WatchEvent, to_keys: Callable[[WatchEvent], list[Key]] = watch.to_keys
            ) -> None:
                for key in to_keys(event):
                    self.queue.add(key)

            informer.handlers.append(handler)
            threads.append(
                threading.Thread(
                    target=informer.run,
                    args=(stop,),
                    name=f"{self.name}-watch-{watch.kind}",
                    daemon=True,
                )
            )
        for index in range(self.workers):
            threads.append(
                threading.Thread(
                    target=self._work, args=(stop,), name=f"{self.name}-worker-{index}", daemon=True
                )
            )
        threads.append(
            threading.Thread(
                target=self._resync, args=(stop,), name=f"{self.name}-resync", daemon=True
            )
        )
        for thread in threads:
            thread.start()
        stop.wait()
        self.queue.shutdown()
        for thread in threads:
            thread.join(timeout=5)

    def wait_synced(self, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        for informer in self.informers.values():
            if not informer.synced.wait(max(0.0, deadline - time.monotonic())):
                return False
        return True

    def _resync(self, stop: threading.Event) -> None:
        while not stop.wait(self.resync_seconds * random.uniform(0.9, 1.1)):  # noqa: S311 - jitter
            for watch in self.watches:
                informer = self.informers[watch.kind]
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
                    self.queue.add(key, after=after)
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
