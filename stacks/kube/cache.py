"""List+watch caches of live objects, one per kind, kept current in background threads.

`LiveCache.kind(api_version, kind)` starts (once) a thread that lists the kind across the
cluster, then watches it from the list's resourceVersion, re-listing when the watch
expires. Readers get the latest object from memory without an API call; `on_event`
hears every change (with the previous copy) so a controller can react to drift in
milliseconds. Only our field manager's managedFields entry is kept, to save memory.

A kind that cannot be listed (RBAC, not served) is marked unusable and readers fall back
to direct GETs. A persistent cache (a controller's own kinds, whose CRDs may arrive from
git after the controller starts) instead watches CustomResourceDefinitions meanwhile and
lists again as soon as its kind's CRD is Established, rather than after a backoff.

When the API server cannot be reached (no HTTP answer: refused, reset, timed out) a
cache retries every RECONNECT_MAX_DELAY seconds at most, so it notices within seconds
that the server is back; an answer with an error status (429, 5xx: an overloaded
server) keeps the longer backoff. The first list after an outage calls `on_recover`, so
a controller can reset its own backoffs and look again at once instead of waiting out
a delay that grew while the server was away. An outage is logged once per kind when it
starts and once when it ends, not on every retry.

Called by the reconciler and by the controller runtime (stacks/kube/controller.py).
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Protocol

from stacks.errors import PlatformError
from stacks.kube.errors import Forbidden, NotFound, Unavailable
from stacks.kube.objects import KubeObject, ObjectRef

log = logging.getLogger(__name__)

RefKey = tuple[str, str, str, str]  # ObjectRef.key
CRD_API_VERSION = "apiextensions.k8s.io/v1"
CRD_KIND = "CustomResourceDefinition"
# How long a persistent cache waits between tries when it cannot watch CRDs (RBAC).
PERSISTENT_MAX_DELAY = 10.0
# Between tries while the API server gives no answer at all: a refused connection costs
# it nothing, and a short delay is what makes recovery after an outage take seconds.
RECONNECT_MAX_DELAY = 2.0
# Between tries while it answers with an error status (overloaded): back off further.
ERROR_MAX_DELAY = 30.0
EventHandler = Callable[[str, "KubeObject | None", "KubeObject | None"], None]
RecoverHandler = Callable[["KindCache"], None]


class Lister(Protocol):
    def list_with_version(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> tuple[list[KubeObject], str]: ...

    def watch(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        resource_version: str = "",
        timeout_seconds: int = 300,
        label_selector: str | None = None,
        register_cancel: Callable[[Callable[[], None]], None] | None = None,
    ) -> object: ...


def _rv(obj: KubeObject | None) -> int:
    try:
        return int((obj or {}).get("metadata", {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


class KindCache:
    def __init__(
        self,
        client: Lister,
        api_version: str,
        kind: str,
        label_selector: str | None,
        keep_manager: str | None,
        on_event: EventHandler | None,
        stop: threading.Event,
        persistent: bool = False,
        namespace: str | None = None,
        on_recover: RecoverHandler | None = None,
    ) -> None:
        self.namespace = namespace  # None: the whole cluster
        self._on_recover = on_recover
        self.failing = ""  # why the last list/watch failed ("" = connected)
        # Why the kind may not be listed or is not served right now ("" = it is): readers
        # that must not act on a partial picture (the dns stub) check it with `failing`.
        self.denied = ""
        self.api_version = api_version
        self._persistent = persistent  # keep retrying a kind that is not served yet
        self.kind = kind
        self._client = client
        self._selector = label_selector
        self._manager = keep_manager
        self._on_event = on_event
        self._stop = stop
        self._store: dict[RefKey, KubeObject] = {}
        self._lock = threading.Lock()
        self.synced = threading.Event()  # listed, or known to be unlistable for now
        self.listed = threading.Event()  # listed successfully at least once
        self.unusable = ""  # why this kind cannot be cached ("" = fine)
        self._cancel_watch: Callable[[], None] | None = None
        self._thread = threading.Thread(target=self._run, name=f"watch-{kind}", daemon=True)
        self._thread.start()

    def _slim(self, obj: KubeObject) -> KubeObject:
        if self._manager is None:  # keep everything
            return obj
        meta = obj.get("metadata") or {}
        fields = meta.get("managedFields")
        if fields:
            meta["managedFields"] = [f for f in fields if f.get("manager") == self._manager]
        return obj

    def get(self, key: RefKey) -> KubeObject | None:
        with self._lock:
            return self._store.get(key)

    def get_named(self, namespace: str, name: str) -> KubeObject | None:
        """The cached object by namespace ("" for cluster-scoped) and name."""
        return self.get((self.api_version.rpartition("/")[0], self.kind, namespace, name))

    def items(self) -> list[KubeObject]:
        with self._lock:
            return list(self._store.values())

    def close(self) -> None:
        """End the in-flight watch at once (the stop event must already be set)."""
        cancel = self._cancel_watch
        if cancel is not None:
            # RuntimeError: urllib3 refuses to shut down a response whose connection went
            # back to the pool, i.e. that watch has already ended: nothing to cancel.
            with contextlib.suppress(OSError, RuntimeError):
                cancel()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _remember_cancel(self, cancel: Callable[[], None]) -> None:
        self._cancel_watch = cancel
        if self._stop.is_set():  # stopped while the watch was opening
            with contextlib.suppress(OSError, RuntimeError):
                cancel()

    def all_keys(self) -> list[RefKey]:
        with self._lock:
            return list(self._store)

    def __len__(self) -> int:
        with self._lock:
            return len(self._store)

    def put(self, obj: KubeObject) -> None:
        """Record an object we just wrote (newer resourceVersion wins)."""
        key = ObjectRef.of(obj).key
        obj = self._slim(obj)
        with self._lock:
            if _rv(obj) >= _rv(self._store.get(key)):
                self._store[key] = obj

    def forget(self, key: RefKey) -> None:
        with self._lock:
            self._store.pop(key, None)

    def _emit(self, kind: str, old: KubeObject | None, new: KubeObject | None) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(kind, old, new)
        except Exception:  # a handler bug must not kill the watch
            log.exception("event handler failed for %s", self.kind)

    def _lost(self, error: Exception, delay: float) -> None:
        """Log a broken list/watch once per outage, then quietly retry."""
        if not self.failing:
            log.warning(
                "failed to watch %s '*': %s; retrying (after %.1fs) until it answers",
                self.kind,
                error,
                delay,
            )
        else:
            log.debug("failed to watch %s '*' again: %s", self.kind, error)
        self.failing = str(error) or type(error).__name__

    def _recovered(self) -> None:
        if not self.failing:
            return
        self.failing = ""
        log.info("watching %s again", self.kind)
        if self._on_recover is not None:
            try:
                self._on_recover(self)
            except Exception:  # a handler bug must not kill the watch
                log.exception("recovery handler failed for %s", self.kind)

    def _relist(self) -> str:
        items, version = self._client.list_with_version(
            self.api_version, self.kind, self.namespace, self._selector
        )
        fresh = {ObjectRef.of(o).key: self._slim(o) for o in items}
        with self._lock:
            old = self._store
            self._store = fresh
        if self.synced.is_set():
            for key, obj in old.items():
                if key not in fresh:
                    self._emit("DELETED", obj, None)
            for key, obj in fresh.items():
                if _rv(obj) != _rv(old.get(key)):
                    self._emit("MODIFIED" if key in old else "ADDED", old.get(key), obj)
        self.synced.set()
        self.listed.set()
        self.denied = ""
        self._recovered()
        return version

    def _defines_this_kind(self, crd: KubeObject) -> bool:
        spec = crd.get("spec") or {}
        group, _, version = self.api_version.rpartition("/")
        served = {str(v.get("name")) for v in spec.get("versions") or [] if v.get("served")}
        established = any(
            c.get("type") == "Established" and c.get("status") == "True"
            for c in (crd.get("status") or {}).get("conditions") or []
        )
        return (
            spec.get("group") == group
            and (spec.get("names") or {}).get("kind") == self.kind
            and version in served
            and established
        )

    def _wait_for_definition(self, seconds: float) -> bool:
        """Watch CRDs for up to `seconds`; True as soon as this kind's CRD is Established
        (then the caller lists again at once), False when the time ran out or CRDs cannot
        be watched (then the caller has waited and retries)."""
        started = time.monotonic()
        try:
            events = self._client.watch(
                CRD_API_VERSION,
                CRD_KIND,
                None,
                timeout_seconds=max(1, int(seconds)),
                register_cancel=self._remember_cancel,
            )
            # closing: leaving the loop early must end the stream (and free its connection).
            with contextlib.closing(events):  # type: ignore[type-var]
                for event in events:  # type: ignore[attr-defined]
                    if self._stop.is_set():
                        return False
                    if event.type in ("ADDED", "MODIFIED") and self._defines_this_kind(
                        event.object
                    ):
                        return True
        except (PlatformError, ValueError, OSError) as error:
            if self._stop.is_set():
                return False
            log.info("cannot watch CRDs for %s (%s); polling instead", self.kind, error)
            remaining = min(seconds, PERSISTENT_MAX_DELAY) - (time.monotonic() - started)
            self._stop.wait(max(0.0, remaining))
        return False

    def _run(self) -> None:
        delay = 0.5  # after an error answer (429, 5xx)
        reconnect = 0.5  # after no answer at all
        unusable_delay = 2.0
        settle = 0.2
        waiting_logged = False
        version = ""
        while not self._stop.is_set():
            try:
                if not version:
                    version = self._relist()
                    self.unusable = ""
                    unusable_delay = 2.0
                    settle = 0.2
                    if waiting_logged:
                        log.info("watching %s again", self.kind)
                        waiting_logged = False
                for event in self._client.watch(  # type: ignore[attr-defined]
                    self.api_version,
                    self.kind,
                    self.namespace,
                    resource_version=version,
                    timeout_seconds=240,
                    label_selector=self._selector,
                    register_cancel=self._remember_cancel,
                ):
                    if self._stop.is_set():
                        return
                    obj = event.object
                    if event.type == "BOOKMARK":
                        version = str(obj.get("metadata", {}).get("resourceVersion") or version)
                        continue
                    key = ObjectRef.of(obj).key
                    version = str(obj.get("metadata", {}).get("resourceVersion") or version)
                    obj = self._slim(obj)
                    with self._lock:
                        old = self._store.get(key)
                        if event.type == "DELETED":
                            self._store.pop(key, None)
                        elif _rv(obj) >= _rv(old):
                            self._store[key] = obj
                    self._emit(event.type, old, None if event.type == "DELETED" else obj)
                delay = 0.5
                reconnect = 0.5
            except (Forbidden, NotFound) as error:
                # Not served yet (its CRD is being installed) or not allowed: readers fall
                # back to direct GETs meanwhile; try again, slowly.
                forget = getattr(self._client, "forget_discovery", None)
                if forget is not None and isinstance(error, NotFound):
                    forget()
                if not self.unusable and not waiting_logged:
                    # Once per outage: a persistent cache keeps trying without `unusable`.
                    log.warning(
                        "failed to watch %s '*': %s; reading it directly until it can be watched",
                        self.kind,
                        error,
                    )
                    waiting_logged = True
                if not self._persistent:
                    self.unusable = str(error)
                self.denied = str(error) or type(error).__name__
                self.synced.set()
                version = ""
                if self._persistent and isinstance(error, NotFound):
                    if self._wait_for_definition(unusable_delay):
                        # Established: list again after a moment, longer each time, as
                        # the API's discovery may lag the CRD (the CRD watch would then
                        # answer at once again).
                        self._stop.wait(settle)
                        settle = min(settle * 2, 5.0)
                        continue
                else:
                    self._stop.wait(unusable_delay)
                unusable_delay = min(unusable_delay * 2, 60.0)
                continue
            except Unavailable as error:
                if self._stop.is_set():  # our own close() ended the stream
                    return
                if error.reason == "Expired" or error.status == 410:
                    version = ""
                    continue
                version = ""
                if error.status == 0:  # no answer: the server is away, not overloaded
                    self._lost(error, reconnect)
                    self._stop.wait(reconnect * random.uniform(0.8, 1.2))  # noqa: S311
                    reconnect = min(reconnect * 2, RECONNECT_MAX_DELAY)
                else:
                    self._lost(error, delay)
                    self._stop.wait(delay)
                    delay = min(delay * 2, ERROR_MAX_DELAY)
            except (PlatformError, ValueError, OSError) as error:
                if self._stop.is_set():
                    return
                self._lost(error, delay)
                version = ""
                self._stop.wait(delay)
                delay = min(delay * 2, ERROR_MAX_DELAY)


class LiveCache:
    """Caches per kind, created on first use."""

    def __init__(
        self,
        client: Lister,
        label_selector: str | None,
        keep_manager: str,
        on_event: EventHandler | None = None,
        on_recover: RecoverHandler | None = None,
    ) -> None:
        self._client = client
        self._selector = label_selector
        self._manager = keep_manager
        self._on_event = on_event
        self._on_recover = on_recover
        self._kinds: dict[tuple[str, str], KindCache] = {}
        self._lock = threading.Lock()
        self.stop = threading.Event()

    def kind(self, api_version: str, kind: str) -> KindCache:
        group = api_version.rpartition("/")[0]
        with self._lock:
            cache = self._kinds.get((group, kind))
            if cache is None:
                cache = KindCache(
                    self._client,
                    api_version,
                    kind,
                    self._selector,
                    self._manager,
                    self._on_event,
                    self.stop,
                    on_recover=self._on_recover,
                )
                self._kinds[(group, kind)] = cache
            return cache

    def register(self, cache: KindCache) -> None:
        """Use an existing cache (e.g. an unfiltered one) for its kind."""
        group = cache.api_version.rpartition("/")[0]
        with self._lock:
            self._kinds[(group, cache.kind)] = cache

    def kinds(self) -> list[KindCache]:
        with self._lock:
            return list(self._kinds.values())

    def wait_synced(self, caches: list[KindCache], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        return all(c.synced.wait(max(0.0, deadline - time.monotonic())) for c in caches)

    def size(self) -> int:
        return sum(len(c) for c in self.kinds())

    def close(self) -> None:
        self.stop.set()
        for cache in self.kinds():
            cache.close()
