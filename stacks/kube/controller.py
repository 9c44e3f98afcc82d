"""The one controller shape: list+watch caches, a work queue, workers, and Flux's reconcile.

Every in-house controller (secrets, certs, dns and the reconciler) is built from two
pieces of this module:

`Runtime` runs the loop. It is assembled from `KindCache` (stacks/kube/cache.py: list,
watch and cache each watched kind) and `WorkQueue` (stacks/kube/queue.py: de-duplicated
keys). Each `Watch` maps events to queue keys; workers call `reconcile(key)`; the
outcome decides the requeue in one place, `Runtime.requeue`:

    return None / Result()            done until the next event or the resync period
    return N / Result(after=N)        come back after N seconds (e.g. a renewal time)
    WaitingError                      come back after error.retry_after
    TransientError (or any bug)       per-key backoff: `first_backoff` (1 s) doubling to
                                      `max_backoff` (stacks/kube/backoff.py), capped
                                      further by Result.max_backoff (a refresh interval);
                                      Result(error=..., after=N) retries after N instead
    PermanentError ("stalled")        logged; retried slowly (a person may fix the object),
                                      or on the backoff with `stalled_backoff`, or never
                                      when Result.retry_stalled is False

A reconcile either raises or returns a `Result` carrying its error (after writing status).
The backoff is reset for every key, and every object queued again (after
`recover_delay`), when a cache lists again after an API outage: a dependency came back,
so nobody waits out a delay that grew while it was away. `run(stop, leader=...)`
optionally waits for a Lease first (stacks/kube/leader.py), so any controller can run
with replicas.

A `Watch` either has the runtime build its cache, or builds it itself (`Watch.cache`,
called when the runtime starts: the reconciler's Applications, whose events its own
handler maps, and which its shared LiveCache also serves); the runtime seeds from both,
and a cache built elsewhere reports its comebacks to `Runtime.recovered`.

`ObjectReconciler` is the shape of one reconcile, after Flux's controllers:

    subject = load(key)                  None: the object is gone, nothing to do
    try:
        for name, step in steps(subject): step(subject) -> seconds | None | Stop(after)
    finally:
        finish(subject, result)          status written once, from the result's error kind

The steps share one signature (they read and fill the `subject`, a controller's own
dataclass), stop at the first error, and never write status themselves. `finish` turns
the result into conditions with `error_kind`, the one mapping of errors to kinds.

Example to copy: stacks/certs/controller.py (docs/controllers.md walks through it).

The reconciler (stacks/reconciler/controller.py) uses every option: 8 workers, its own
Application cache, no resync (each Application asks for its interval, jittered, in its
`Result`), a backoff from 2 s capped at the Application's interval for stalled objects
too, a 0.3 s debounce after a comeback; its finalizer is a step taken while
`deletionTimestamp` is set (`load` returns the subject either way), and its status
merge-patch is its `finish`.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Final, Generic, TypeVar

from stacks.errors import PermanentError, PlatformError, WaitingError
from stacks.kube.backoff import Backoff
from stacks.kube.cache import EventHandler, KindCache
from stacks.kube.client import KubeClient, WatchEvent
from stacks.kube.objects import KubeObject
from stacks.kube.queue import WorkQueue

if TYPE_CHECKING:
    from stacks.kube.leader import LeaderElector

log = logging.getLogger(__name__)

QueueKey = Hashable
MAX_BACKOFF = 300.0
PERMANENT_RETRY = 60.0


# ---- outcomes ----------------------------------------------------------------------------


class ErrorKind(StrEnum):
    """What an error means for the object (Flux: stalling, waiting, generic)."""

    WAITING = "Waiting"  # still converging: look again after retry_after, no backoff
    STALLED = "Stalled"  # a person must act (the error's hint says how)
    TRANSIENT = "Transient"  # a hiccup or a bug: retry with backoff


def error_kind(error: BaseException) -> ErrorKind:
    """The one mapping of the error tree (stacks/errors.py) to what a controller does."""
    if isinstance(error, WaitingError):
        return ErrorKind.WAITING
    if isinstance(error, PermanentError):
        return ErrorKind.STALLED
    return ErrorKind.TRANSIENT


@dataclass(frozen=True)
class Result:
    """What a reconcile asks of the runtime (controller-runtime's Result plus the error).

    `after`: on success, come back after so many seconds (None: at the next event); on a
    transient failure, come back after so many seconds instead of the backoff's delay
    (the failure still counts).
    `error`: the reconcile failed (status already written); the runtime requeues by kind.
    `max_backoff`: caps this key's transient backoff (a short refresh interval).
    `first_backoff`: this failure's own first delay (the runtime's when None).
    `retry_stalled`: False when a stalled object cannot heal without a change to it.
    `step`: the sub-step that failed, for the log line.
    `stopped`: the sub-step that ended the reconcile early with `Stop`.
    `logged`: the controller already logged this failure (it logs on change only), so
    the runtime logs it at DEBUG.
    """

    after: float | None = None
    error: BaseException | None = None
    max_backoff: float | None = None
    first_backoff: float | None = None
    retry_stalled: bool = True
    step: str = ""
    stopped: str = ""
    logged: bool = False

    @property
    def kind(self) -> ErrorKind | None:
        return error_kind(self.error) if self.error is not None else None

    def sooner(self, after: float | None) -> Result:
        """This result, coming back at the earlier of its own and `after`."""
        if after is None or after <= 0:
            return self
        if self.after is None or after < self.after:
            return replace(self, after=after)
        return self


# ---- one reconcile -----------------------------------------------------------------------


@dataclass(frozen=True)
class Stop:
    """Returned by a step to end the reconcile early without an error: nothing (more)
    to do now, come back after `after` seconds (None: at the next event)."""

    after: float | None = None


STOP: Final = Stop()
S = TypeVar("S")
StepResult = float | None | Stop
Step = tuple[str, Callable[[S], StepResult]]


class ObjectReconciler(ABC, Generic[S]):
    """Load, named sub-steps, status in a `finally`: every controller's reconcile.

    Subclasses implement `load`, `steps` and `finish`; `reconcile(key)` is what a
    `Runtime` calls. `finish` runs whatever happened (success, an error, a bug) and is
    the only place that writes status; an error it raises itself (the status write
    failed) replaces the result's, so the runtime retries with backoff.
    """

    @abstractmethod
    def load(self, key: QueueKey) -> S | None:
        """The subject of this reconcile (the object and what the steps fill in)."""

    @abstractmethod
    def steps(self, subject: S) -> Sequence[Step[S]]:
        """The named sub-steps, in order."""

    @abstractmethod
    def finish(self, subject: S, result: Result) -> Result:
        """Summarize `result` into status (written once) and events; the final result."""

    def reconcile(self, key: QueueKey) -> Result:
        subject = self.load(key)
        if subject is None:
            return Result()
        result = Result()
        current = ""
        soonest: float | None = None
        stopped = False
        try:
            for name, step in self.steps(subject):
                current = name
                after = step(subject)
                stopped = isinstance(after, Stop)
                if isinstance(after, Stop):
                    after = after.after
                if after is not None and after > 0 and (soonest is None or after < soonest):
                    soonest = after
                if stopped:
                    break
            # Built once (not per step): this runs for every key at every refresh.
            result = Result(after=soonest, stopped=current if stopped else "")
        except Exception as error:  # every kind, and bugs: status must still be written
            result = Result(error=error, step=current)
        finally:
            # `finally`, not after the loop: a KeyboardInterrupt or a stop in a step still
            # leaves the object's status saying what happened.
            result = self.finish(subject, result)
        return result


# ---- the loop ----------------------------------------------------------------------------


@dataclass
class Watch:
    """Watch a kind and turn each event into keys to reconcile."""

    api_version: str
    kind: str
    to_keys: Callable[[WatchEvent], list[QueueKey]]
    namespace: str | None = None
    label_selector: str | None = None
    # The informer's name in Runtime.informers; two watches of one kind (say, managed
    # Secrets everywhere and CA Secrets in one namespace) need different names.
    name: str = ""
    # Builds the cache elsewhere, its events already wired by its builder (to_keys then
    # only seeds and requeues after a comeback); called when the runtime starts (after
    # the Lease), and closed by its builder, not by the runtime.
    cache: Callable[[], KindCache] | None = None

    @property
    def informer_name(self) -> str:
        return self.name or self.kind


@dataclass
class Runtime:
    """Caches, queue and workers of one controller; `reconcile` is its only logic."""

    name: str
    client: KubeClient
    reconcile: Callable[[QueueKey], Result | float | None]
    watches: list[Watch]
    workers: int = 2
    resync_seconds: float | None = 300.0  # None: no periodic resync
    max_backoff: float = MAX_BACKOFF
    first_backoff: float = 1.0
    stalled_backoff: bool = False  # stalled objects retry on the backoff, not every 60 s
    recover_delay: float = 0.0  # after a comeback: lets the other kinds relist too
    queue: WorkQueue[QueueKey] = field(default_factory=WorkQueue)
    informers: dict[str, KindCache] = field(default_factory=dict)
    reconciles: int = 0
    errors: int = 0
    recoveries: int = 0
    backoff: Backoff[QueueKey] = field(init=False)
    # Set by run() once the informers exist, so wait_synced from another thread never
    # sees an empty informer table (and reports synced) before run() got going.
    _started: threading.Event = field(default_factory=threading.Event)
    # The caches whose objects _seed has queued: only their relists are comebacks.
    _seeded: list[KindCache] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.backoff = Backoff(self.max_backoff, first=self.first_backoff)

    def informer(self, name: str) -> KindCache:
        """The cache of a watch, by its informer name (the kind unless named)."""
        return self.informers[name]

    def synced(self) -> bool:
        """Every watched kind listed at least once (what /readyz reports)."""
        return bool(self.informers) and all(i.listed.is_set() for i in self.informers.values())

    def run(
        self,
        stop: threading.Event,
        leader: LeaderElector | None = None,
        on_lead: Callable[[], None] | None = None,
    ) -> None:
        """Run until `stop` is set. Blocks; returns promptly after `stop` (the watches
        are cancelled, not waited out). With `leader`, first wait to hold its Lease, and
        stop (setting `stop`) when it is lost, so that only one replica ever acts.
        `on_lead` runs once this replica acts and its caches exist, before the workers
        start (the reconciler labels its Pod and takes webhooks from then on)."""
        if leader is not None:
            if not leader.acquire(stop):
                return
            threading.Thread(
                target=self._lead, args=(leader, stop), name=f"{self.name}-lease", daemon=True
            ).start()
        try:
            self._run(stop, on_lead)
        finally:
            if leader is not None:
                leader.release()

    @staticmethod
    def _lead(leader: LeaderElector, stop: threading.Event) -> None:
        leader.renew_forever(stop)
        if leader.lost.is_set():
            stop.set()

    def _run(self, stop: threading.Event, on_lead: Callable[[], None] | None = None) -> None:
        for watch in self.watches:
            if watch.cache is not None:
                self.informers[watch.informer_name] = watch.cache()
                continue
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
                on_recover=self.recovered,
            )
        self._started.set()
        if on_lead is not None:
            on_lead()
        threads = [
            threading.Thread(
                target=self._work, args=(stop,), name=f"{self.name}-worker-{index}", daemon=True
            )
            for index in range(self.workers)
        ]
        threads.append(
            threading.Thread(target=self._seed, args=(stop,), name=f"{self.name}-seed", daemon=True)
        )
        if self.resync_seconds:
            threads.append(
                threading.Thread(
                    target=self._resync, args=(stop,), name=f"{self.name}-resync", daemon=True
                )
            )
        for thread in threads:
            thread.start()
        stop.wait()
        self.queue.close()
        own = [i for w, i in self._paired() if w.cache is None]
        for informer in own:
            informer.close()
        deadline = time.monotonic() + 5.0
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        for informer in own:
            informer.join(timeout=max(0.0, deadline - time.monotonic()))

    def _paired(self) -> list[tuple[Watch, KindCache]]:
        return [
            (w, self.informers[w.informer_name])
            for w in self.watches
            if w.informer_name in self.informers
        ]

    def _handler(self, to_keys: Callable[[WatchEvent], list[QueueKey]]) -> EventHandler:
        def handle(event_type: str, old: KubeObject | None, new: KubeObject | None) -> None:
            obj = new if new is not None else old
            if obj is not None:
                for key in to_keys(WatchEvent(event_type, obj)):
                    self.queue.add(key)

        return handle

    def _queue_all(self, watches: Iterable[Watch], event_type: str) -> None:
        for watch in watches:
            informer = self.informers.get(watch.informer_name)
            for obj in informer.items() if informer is not None else []:
                for key in watch.to_keys(WatchEvent(event_type, obj)):
                    self.queue.add(key)

    def recovered(self, cache: KindCache) -> None:
        """The API server is back after an outage: forget every key's backoff (it grew
        while the server was away) and look at everything again now (or after
        `recover_delay`, so one reconcile sees every kind relisted). A watched cache's
        first list after a failed start is no comeback: `_seed` queues its objects then,
        and queueing everything besides would only repeat the start-up's work. Other
        caches (the reconciler's managed kinds) pass their comebacks here too."""
        watched = any(informer is cache for informer in self.informers.values())
        if watched and not any(informer is cache for informer in self._seeded):
            return
        self.recoveries += 1
        self.backoff.reset()
        log.info(
            "%s: the API server is back (%s listed); reconciling everything again",
            self.name,
            cache.kind,
        )
        if self.recover_delay <= 0:
            self._queue_all(self.watches, "MODIFIED")
            return
        for watch, informer in self._paired():
            for obj in informer.items():
                for key in watch.to_keys(WatchEvent("MODIFIED", obj)):
                    self.queue.add(key, delay=self.recover_delay)

    def _seed(self, stop: threading.Event) -> None:
        """Queue every object of each kind once its first list has arrived (the cache
        reports only changes after that)."""
        pending = dict(self.informers)
        while pending and not stop.is_set():
            for name, informer in list(pending.items()):
                if informer.listed.wait(0.2):
                    self._queue_all([w for w in self.watches if w.informer_name == name], "ADDED")
                    self._seeded.append(informer)
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
        period = self.resync_seconds or 300.0
        while not stop.wait(period * random.uniform(0.9, 1.1)):  # noqa: S311 - jitter
            self._queue_all(self.watches, "MODIFIED")

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

    def _reconcile_one(self, key: QueueKey) -> float | None:
        self.reconciles += 1
        try:
            outcome = self.reconcile(key)
        except Exception as error:
            outcome = Result(error=error)
        if not isinstance(outcome, Result):
            outcome = Result(after=outcome)
        return self.requeue(key, outcome)

    def requeue(self, key: QueueKey, result: Result) -> float | None:
        """The one place where a reconcile's outcome becomes a requeue delay."""
        error = result.error
        where = f"{self.name} {key}" + (f" ({result.step})" if result.step else "")
        if error is None:
            self.backoff.forget(key)
            return result.after
        kind = error_kind(error)
        if kind is ErrorKind.STALLED and self.stalled_backoff and result.retry_stalled:
            kind = ErrorKind.TRANSIENT
        if kind is ErrorKind.WAITING:
            assert isinstance(error, WaitingError)
            log.info("%s: %s", where, error)
            return error.retry_after
        self.errors += 1
        level = logging.DEBUG if result.logged else logging.WARNING
        if kind is ErrorKind.STALLED:
            log.log(level, "%s: %s", where, error)
            return PERMANENT_RETRY if result.retry_stalled else None
        delay = self.backoff.failed(key, result.max_backoff, result.first_backoff)
        if result.after is not None and result.after > 0:
            delay = result.after  # the failure's own retry time (still counted)
        log.log(
            level,
            "%s failed (retry in %.0fs): %s",
            where,
            delay,
            error,
            exc_info=not isinstance(error, PlatformError),
        )
        return delay


def object_key(event: WatchEvent) -> list[QueueKey]:
    """The common mapping: an event's own (namespace, name)."""
    meta = event.object.get("metadata") or {}
    return [(str(meta.get("namespace") or ""), str(meta.get("name", "")))]


def kind_key(kind: str) -> Callable[[WatchEvent], list[QueueKey]]:
    """The mapping for controllers of several kinds: (kind, namespace, name)."""

    def to_keys(event: WatchEvent) -> list[QueueKey]:
        meta = event.object.get("metadata") or {}
        return [(kind, str(meta.get("namespace") or ""), str(meta.get("name", "")))]

    return to_keys


def split_key(key: QueueKey) -> tuple[str, str, str]:
    """The (kind, namespace, name) of a `kind_key` key."""
    assert isinstance(key, tuple) and len(key) == 3
    return str(key[0]), str(key[1]), str(key[2])
