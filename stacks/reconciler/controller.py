"""The reconciler's controller: triggers, the work queue and one reconcile per Application.

Triggers put an Application's key on the queue:
- the Application watch (created, spec changed, refresh annotation, being deleted),
- its interval (default 3 minutes; errors back off exponentially up to the interval),
- the git server's push webhook (`on_push`): one fetch of the repository serves every
  Application following it (none when the cache already has the announced commit),
  and the changed paths' files are read for all of them in two git runs;
  the Applications whose path's tree changed are queued first, the others after them
  for a cheap revision bump (their render is reused because it is keyed by the path's
  tree id, and an unchanged plan applies nothing), so one changed app never waits
  behind a hundred unchanged ones,
- watches on managed kinds: a managed object deleted, edited in a field we own, or whose
  health changed (wave gates, app health), with a short debounce,
- a dependency's or child's status change (dependsOn, app-of-apps),
- the API server coming back after an outage: the first list of a watched kind resets
  every Application's backoff (it grew while the server was away) and looks again now.

Logs: a failing Application gets one warning line when its state changes (a new
reason), not one per object or per retry; per-object failures are DEBUG lines, and the
condition, the event and `platform apps` carry the details.

`reconcile(key)` runs source -> render -> plan -> apply (waves) -> prune -> health and
always writes status in a `finally`. Waves never block a worker: a wave that is not
Healthy yet ends the reconcile with "waiting for wave N" and the object's next health
change (or a short requeue) continues the same sync. Per-wave timeouts stop a sync
that cannot become healthy.

Called by program.py (the process) and by tests.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from stacks.errors import PermanentError, PlatformError, TransientError
from stacks.kube import backoff
from stacks.kube.cache import KindCache, LiveCache, RefKey
from stacks.kube.client import KubeClient
from stacks.kube.errors import ApiError, Invalid, NotFound
from stacks.kube.events import EventRecorder
from stacks.kube.health import Health, HealthStatus, health_of
from stacks.kube.objects import KubeObject, ObjectRef, annotations_of, condition_of
from stacks.kube.queue import WorkQueue
from stacks.reconciler import prune as pruning
from stacks.reconciler.api import (
    API_VERSION,
    FIELD_MANAGER,
    FINALIZER,
    KIND,
    MANAGED_LABEL,
    TRACKING,
    AppKey,
    AppSpec,
    owner_of_tracking,
)
from stacks.reconciler.apply import Applier, ApplyOutcome, wave_health
from stacks.reconciler.desired import Loader, ReconcileFailed, refs_of
from stacks.reconciler.metrics import ReconcilerMetrics
from stacks.reconciler.plan import (
    Action,
    Desired,
    InventoryEntry,
    Live,
    Plan,
    fields_hash,
    make_plan,
    mass_prune_allowed,
)
from stacks.reconciler.render import RenderError
from stacks.reconciler.source import (
    Credentials,
    FetchError,
    GitCache,
    redact_url,
)
from stacks.reconciler.status import (
    Report,
    SyncStatus,
    app_state,
    describe,
    new_inventory,
    status_digest,
    to_status,
)

log = logging.getLogger(__name__)

NAMESPACE_MANAGER = "platform-reconciler-namespaces"
# A poll that falls due accepts a fetch of its repository that started this long ago
# (at most a tenth of its interval): Applications on one repository poll at about the
# same time, and one fetch answers them all.
POLL_SHARE = 10.0
# After the API server returns, kinds relist one after another within moments: wait this
# long so one reconcile sees them all, instead of one per kind.
RECONNECT_DEBOUNCE = 0.3


@dataclass(frozen=True)
class Options:
    cache_dir: Path
    watch_namespace: str | None = None
    workers: int = 8  # see program.py
    apply_workers: int = 8
    credentials_file: Path | None = None
    dependency_retry: float = 5.0
    drift_debounce: float = 0.2
    wave_poll: float = 2.0
    max_backoff: float = 300.0


@dataclass
class Operation:
    """A sync under way across reconciles (waves)."""

    revision: str
    forced: bool
    wave_started: dict[int, float] = field(default_factory=dict)


@dataclass
class Memory:
    """What the controller remembers about one Application between reconciles."""

    revision: str = ""
    fetched_at: float = 0.0
    fetch: bool = True
    # When the trigger that asked for a fresh fetch arrived: any fetch of the repository
    # that started since then serves it (GitCache coalesces them).
    fetch_since: float = field(default_factory=time.monotonic)
    tree: str = ""  # tree id of source.path in the last render
    render_key: tuple[str, str, bool, str] | None = None  # (tree id, path, recurse, namespace)
    # The last render, normalized. Only this form is kept (not the rendered manifests
    # too): for a 10,000-object app each copy is about 12 MB, and normalizing again on
    # every re-sync costs a deep copy and a hash per object.
    desired: list[Desired] = field(default_factory=list)
    operation: Operation | None = None
    failures: int = 0
    # Counted apart from `failures`: a deletion's retries must not inherit the backoff of
    # the syncs that failed before it.
    deletion_failures: int = 0
    inventory: list[InventoryEntry] | None = None
    expected: dict[RefKey, str] = field(default_factory=dict)  # our fields hash per object
    status_hash: str = ""
    status_failing: bool = False  # the last status write failed (logged once)
    last_warning: str = ""
    logged_state: str = ""  # the failure reason last logged ("" = fine)
    heals: list[float] = field(default_factory=list)


class Recorder(Protocol):
    def record(self, obj: KubeObject, reason: str, message: str, warning: bool = False) -> None: ...


class AsyncEvents:
    """Events posted by one background thread, in order, so a reconcile never waits for
    one (a sync of 100 Applications would otherwise spend a third of its API round
    trips on them). As client-go's recorder does, Events are best effort: when the
    API server cannot keep up, more than MAX_PENDING waiting ones are dropped (DEBUG
    line), never the reconcile held up."""

    MAX_PENDING = 1000

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="events")
        self._pending = 0
        self._lock = threading.Lock()

    def record(self, obj: KubeObject, reason: str, message: str, warning: bool = False) -> None:
        with self._lock:
            if self._pending >= self.MAX_PENDING:
                log.debug("dropped Event %s for '%s': too many waiting", reason, AppKey.of(obj))
                return
            self._pending += 1
        try:
            self._pool.submit(self._post, obj, reason, message, warning)
        except RuntimeError:  # stopping: the pool takes no more
            with self._lock:
                self._pending -= 1

    def _post(self, obj: KubeObject, reason: str, message: str, warning: bool) -> None:
        try:
            self.recorder.record(obj, reason, message, warning)
        finally:
            with self._lock:
                self._pending -= 1

    def close(self) -> None:
        """Take no more and drop what waits: exit must not wait for a thousand posts to
        an API server that may be gone (the one in flight ends with its timeout)."""
        self._pool.shutdown(wait=False, cancel_futures=True)


def _same_repo(url: str, repo: str) -> bool:
    def norm(text: str) -> str:
        text = redact_url(text).rstrip("/")
        return text[:-4] if text.endswith(".git") else text

    a, b = norm(url), norm(repo)
    return a == b or a.endswith("/" + b.lstrip("/"))


class AppController:
    def __init__(
        self,
        client: KubeClient,
        options: Options,
        metrics: ReconcilerMetrics | None = None,
        recorder: EventRecorder | None = None,
    ) -> None:
        self.client = client
        self.options = options
        self.metrics = metrics or ReconcilerMetrics()
        self.recorder = recorder or EventRecorder(client, "platform-reconciler")
        self.events = AsyncEvents(self.recorder)
        self.git = GitCache(options.cache_dir / "git")
        self.queue: WorkQueue[AppKey] = WorkQueue()
        self.live = LiveCache(
            client, MANAGED_LABEL, FIELD_MANAGER, self._on_managed_event, self._on_reconnect
        )
        self.apps = KindCache(
            client,
            API_VERSION,
            KIND,
            None,
            FIELD_MANAGER,
            self._on_app_event,
            self.live.stop,
            persistent=True,
            namespace=options.watch_namespace,
            on_recover=self._on_reconnect,
        )
        self.live.register(self.apps)
        self.loader = Loader(client, self.git, options.credentials_file)
        self.applier = Applier(client, self._remember, options.apply_workers)
        self._memory: dict[AppKey, Memory] = {}
        self._memory_lock = threading.Lock()
        self._namespaces: set[str] = set()  # created for CreateNamespace=true
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self.metrics.gauges["queue_depth"] = lambda: float(self.queue.depth())
        self.metrics.gauges["managed_objects"] = lambda: float(self.live.size())
        self.metrics.gauges["applications"] = lambda: float(len(self.apps))
        self.metrics.counters["git_fetches_total"] = lambda: float(self.git.fetches)

    # ---- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        for i in range(self.options.workers):
            thread = threading.Thread(target=self._worker, name=f"reconcile-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)
        threading.Thread(target=self._seed, name="seed", daemon=True).start()

    def _seed(self) -> None:
        """Queue every Application once the watch has listed them."""
        while not self._stop.is_set():
            if self.apps.synced.wait(1.0):
                for key in self.apps.all_keys():
                    self.enqueue(AppKey(key[2], key[3]), fetch=True)
                return

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.queue.close()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self.live.close()
        self.applier.close()
        self.events.close()

    def _worker(self) -> None:
        while not self._stop.is_set():
            key = self.queue.get(timeout=1.0)
            if key is None:
                continue
            try:
                self.reconcile(key)
            except Exception:
                log.exception("failed to reconcile Application '%s': unexpected error", key)
                self.queue.add(key, delay=10.0)
            finally:
                self.queue.done(key)

    def memory(self, key: AppKey) -> Memory:
        with self._memory_lock:
            return self._memory.setdefault(key, Memory())

    # ---- triggers ----------------------------------------------------------------------

    def enqueue(self, key: AppKey, fetch: bool = False, delay: float = 0.0) -> None:
        if fetch:
            memory = self.memory(key)
            memory.fetch_since = time.monotonic()
            memory.fetch = True
        self.queue.add(key, delay)

    def on_push(self, repo: str, ref: str, after: str) -> list[AppKey]:
        """A push webhook: every app that follows `repo` at `ref` looks at the new commit.

        The fetch and the queueing happen on a thread of their own (`_fan_out`), so the
        webhook answers at once; the answer lists the Applications that will look."""
        received = time.monotonic()
        branch = ref.removeprefix("refs/heads/").removeprefix("refs/tags/")
        matched: list[AppKey] = []
        for key in self.apps.all_keys():
            obj = self.apps.get(key)
            if obj is None:
                continue
            source = (obj.get("spec") or {}).get("source") or {}
            if not _same_repo(str(source.get("repoURL", "")), repo):
                continue
            target = str(source.get("targetRevision") or "HEAD")
            if target not in ("HEAD", branch, ref, after):
                continue
            matched.append(AppKey(key[2], key[3]))
        log.info("push to %s %s: %d application(s) follow it", repo, ref, len(matched))
        if matched:
            threading.Thread(
                target=self._fan_out_or_queue,
                args=(matched, after, received),
                name="push",
                daemon=True,
            ).start()
        return matched

    def _fan_out_or_queue(self, keys: list[AppKey], after: str, received: float) -> None:
        try:
            self._fan_out(keys, after, received)
        except Exception:
            # Never lose a push: each Application fetches for itself, as it always could.
            log.exception("failed to sort a push's applications: queueing them all")
            for key in keys:
                self.enqueue(key, fetch=True)

    def _fan_out(self, keys: list[AppKey], after: str, received: float) -> None:
        """Fetch once per repository (and credentials), then queue the Applications whose
        path changed before those whose path is the same tree as in their last render.

        Whatever cannot be classified here (a spec that does not parse, credentials that
        cannot be read, a failing fetch) is queued with a fetch of its own, so its
        reconcile reports the problem in its status exactly as before.
        """
        groups: dict[tuple[str, str, Credentials | None], list[tuple[AppKey, str, bool]]] = {}
        fallback: list[AppKey] = []
        # One read per credentials Secret, not one per Application.
        identities: dict[tuple[str, str], Credentials | None] = {}
        for key in keys:
            obj = self.apps.get(("gitops.platform.local", "Application", key.namespace, key.name))
            try:
                if obj is None:
                    continue
                spec = AppSpec.parse(obj)
                if spec.deleting:
                    raise PermanentError("being deleted")
                who = (
                    (key.namespace, spec.source.secret_name)
                    if spec.source.secret_name
                    else ("", spec.source.repo_url)
                )
                if who not in identities:
                    identities[who] = self.loader.credentials(spec)
                creds = identities[who]
            except PlatformError:
                fallback.append(key)
                continue
            group = (spec.source.repo_url, spec.source.target_revision, creds)
            groups.setdefault(group, []).append((key, spec.source.path, spec.source.recurse))
        changed: list[AppKey] = []
        unchanged: list[AppKey] = []
        fetches = self.git.fetches
        for (url, target, creds), members in groups.items():
            try:
                # A webhook for a commit the cache already has (a repeated delivery, or a
                # poll got there first) needs no fetch.
                known = self.git.resolve(url, target) if after else None
                sha = (
                    known
                    if known is not None and known == after
                    else self.git.fetch(url, target, creds, since=received)
                )
                trees = self.git.tree_ids(url, sha, [path for _, path, _ in members])
            except PlatformError as error:
                log.debug("push: failed to fetch %s: %s", redact_url(url), error)
                fallback += [key for key, _, _ in members]
                continue
            now = time.monotonic()
            reads: list[tuple[str, str, bool]] = []
            for key, path, recurse in members:
                memory = self.memory(key)
                if memory.fetch and memory.fetch_since > received:
                    fallback.append(key)  # asked for something newer meanwhile
                    continue
                memory.revision, memory.fetched_at, memory.fetch = sha, now, False
                tree = trees.get(path)
                if tree and tree == memory.tree:
                    unchanged.append(key)
                else:
                    changed.append(key)
                    if tree:
                        reads.append((path, tree, recurse))
            try:
                # The changed paths' files in two git runs, not two per Application.
                self.git.prefetch(url, sha, reads)
            except PlatformError as error:  # each reads its own files, as without this
                log.debug("push: failed to read ahead in %s: %s", redact_url(url), error)
        for key in changed + unchanged:
            self.queue.add(key)
        for key in fallback:
            self.enqueue(key, fetch=True)
        log.info(
            "push: %d fetch(es) for %d application(s): %d changed (queued first), "
            "%d unchanged (revision bump), %d on their own",
            self.git.fetches - fetches,
            len(keys),
            len(changed),
            len(unchanged),
            len(fallback),
        )

    def _on_app_event(self, kind: str, old: KubeObject | None, new: KubeObject | None) -> None:
        obj = new or old
        if obj is None:
            return
        key = AppKey.of(obj)
        if self.options.watch_namespace and key.namespace != self.options.watch_namespace:
            return
        if kind == "DELETED":
            with self._memory_lock:
                self._memory.pop(key, None)
        else:
            old_meta, new_meta = (
                (old or {}).get("metadata") or {},
                (new or {}).get("metadata") or {},
            )
            spec_changed = (
                kind == "ADDED"
                or old is None
                or old_meta.get("generation") != new_meta.get("generation")
            )
            refresh_changed = annotations_of(old or {}) != annotations_of(new or {})
            lifecycle = bool(new_meta.get("deletionTimestamp")) and (
                old_meta.get("finalizers") != new_meta.get("finalizers")
                or not old_meta.get("deletionTimestamp")
            )
            if spec_changed or refresh_changed or lifecycle:
                self.enqueue(key, fetch=spec_changed or refresh_changed)
        if app_state(old) != app_state(new):
            self._notify_related(key, obj)
        self._on_managed_event(kind, old, new)  # a child Application is also a managed object

    def _on_reconnect(self, cache: KindCache) -> None:
        """A watch listed again after failing: the API server is back. Whatever failed
        meanwhile failed because it was away, so forget the backoff that grew during the
        outage and look again now (a short debounce lets the other kinds relist too)."""
        with self._memory_lock:
            waiting = [
                key
                for key, memory in self._memory.items()
                if memory.failures or memory.status_failing or memory.deletion_failures
            ]
            for key in waiting:
                memory = self._memory[key]
                memory.failures = 0
                memory.deletion_failures = 0
        if waiting:
            log.info(
                "the API server answers again (%s listed): retrying %d application(s) now",
                cache.kind,
                len(waiting),
            )
        for key in waiting:
            self.queue.add(key, delay=RECONNECT_DEBOUNCE)

    def _notify_related(self, key: AppKey, obj: KubeObject) -> None:
        for other_key in self.apps.all_keys():
            other = self.apps.get(other_key)
            if other is None:
                continue
            for dep in (other.get("spec") or {}).get("dependsOn") or []:
                dep_ns = dep.get("namespace") or other_key[2]
                if dep_ns == key.namespace and dep.get("name") == key.name:
                    self.enqueue(AppKey(other_key[2], other_key[3]))

    def _on_managed_event(self, kind: str, old: KubeObject | None, new: KubeObject | None) -> None:
        obj = new or old
        if obj is None:
            return
        owner = owner_of_tracking(annotations_of(obj).get(TRACKING, ""))
        if owner is None:
            return
        if self.options.watch_namespace and owner.namespace != self.options.watch_namespace:
            return
        with self._memory_lock:
            memory = self._memory.get(owner)
        if memory is None or memory.inventory is None:  # not reconciled yet: let it look
            self.queue.add(owner, delay=self.options.drift_debounce)
            return
        key = ObjectRef.of(obj).key
        expected = memory.expected.get(key)
        if kind == "DELETED":
            trigger = expected is not None
        else:
            drifted = expected is not None and fields_hash(obj) != expected
            health_changed = old is not None and health_of(old) != health_of(obj)
            trigger = drifted or health_changed
        if trigger:
            self.queue.add(owner, delay=self.options.drift_debounce)

    def _remember(self, live: KubeObject) -> None:
        ref = ObjectRef.of(live)
        self.live.kind(ref.api_version, ref.kind).put(live)
        owner = owner_of_tracking(annotations_of(live).get(TRACKING, ""))
        if owner is not None:
            self.memory(owner).expected[ref.key] = fields_hash(live)

    # ---- reconcile ---------------------------------------------------------------------

    def reconcile(self, key: AppKey) -> None:
        obj = self.apps.get(("gitops.platform.local", "Application", key.namespace, key.name))
        if obj is None:
            return
        memory = self.memory(key)
        previous: dict[str, Any] = dict(obj.get("status") or {})
        started = time.monotonic()
        log.debug("reconciling Application '%s'", key)
        try:
            spec = AppSpec.parse(obj)
        except PermanentError as error:
            report = Report(int((obj.get("metadata") or {}).get("generation") or 0), {}, {})
            report.fail("InvalidSpec", str(error), stalled=True)
            self._write_status(obj, report, previous, memory)
            return
        if spec.deleting:
            self._finalize(spec, obj, memory)
            return
        report = Report(
            spec.generation,
            source={
                "repoURL": redact_url(spec.source.repo_url),
                "path": spec.source.path,
                "targetRevision": spec.source.target_revision,
            },
            destination={"namespace": spec.namespace},
        )
        report.health = Health(
            HealthStatus((previous.get("health") or {}).get("status") or "Unknown"),
            str((previous.get("health") or {}).get("message") or ""),
        )
        report.sync = SyncStatus((previous.get("sync") or {}).get("status") or "Unknown")
        requeue = spec.interval * random.uniform(0.95, 1.05)  # noqa: S311 - jitter, not crypto
        result = "success"
        try:
            requeue = min(requeue, self._sync(spec, obj, previous, memory, report))
            memory.failures = 0
        except ReconcileFailed as error:
            memory.failures += 1
            result = error.reason
            report.fail(error.reason, str(error), stalled=error.stalled)
            retry = (
                error.retry
                if error.retry is not None
                else backoff.delay(memory.failures + 1, spec.interval)
            )
            requeue = min(requeue, retry)
        except RenderError as error:
            memory.failures += 1
            result = "RenderFailed"
            report.sync = SyncStatus.UNKNOWN
            report.fail("RenderFailed", str(error), stalled=True)
            requeue = min(requeue, backoff.delay(memory.failures + 1, spec.interval))
        except FetchError as error:
            memory.failures += 1
            memory.fetch = True
            result = "FetchFailed"
            report.fail(
                "FetchFailed", f"failed to fetch {redact_url(spec.source.repo_url)}: {error}"
            )
            requeue = min(requeue, backoff.delay(memory.failures + 1, spec.interval))
        except TransientError as error:
            memory.failures += 1
            result = "TransientError"
            report.fail("ReconcileFailed", str(error))
            requeue = min(requeue, backoff.delay(memory.failures + 1, spec.interval))
        except PermanentError as error:
            memory.failures += 1
            result = "Stalled"
            report.fail(
                "Stalled", f"{error}" + (f" ({error.hint})" if error.hint else ""), stalled=True
            )
            requeue = min(requeue, backoff.delay(memory.failures + 1, spec.interval))
        finally:
            if spec.refresh and spec.refresh != previous.get("lastHandledRefresh"):
                report.handled_refresh = spec.refresh
            self._write_status(obj, report, previous, memory)
            self.metrics.sync(result, time.monotonic() - started)
            if result != "success":
                self.metrics.error(result)
                message = report.ready[2]
                if message != memory.last_warning:
                    memory.last_warning = message
                    self.events.record(obj, result, message, warning=True)
                state = f"{result}/{report.ready[1]}"
                if state != memory.logged_state:
                    memory.logged_state = state
                    log.warning("failed to sync Application '%s': %s", key, message)
                else:
                    log.debug("failed to sync Application '%s' again: %s", key, message)
            else:
                memory.last_warning = ""
                if memory.logged_state:
                    memory.logged_state = ""
                    log.info("Application '%s' reconciles again", key)
        self.queue.add(key, delay=max(requeue, 0.05))

    # ---- the sync pipeline -------------------------------------------------------------

    def _dependencies_ready(self, spec: AppSpec) -> str:
        for dep in spec.depends_on:
            other = self.apps.get(("gitops.platform.local", "Application", dep.namespace, dep.name))
            if other is None:
                return f"waiting for dependency '{dep}': it does not exist"
            ready = condition_of(other, "Ready")
            generation = int((other.get("metadata") or {}).get("generation") or 0)
            observed = int((other.get("status") or {}).get("observedGeneration") or 0)
            if ready is None or ready.get("status") != "True" or observed < generation:
                why = (ready or {}).get("message") or "not reconciled yet"
                return f"waiting for dependency '{dep}' to be Ready: {why}"
        return ""

    def _revision(self, spec: AppSpec, memory: Memory) -> str:
        now = time.monotonic()
        due = now - memory.fetched_at >= spec.interval * 0.9
        if memory.fetch or not memory.revision or due:
            # A trigger needs a fetch that started after it arrived; a poll accepts one
            # a few seconds old (another Application's poll of the same repository).
            since = (
                memory.fetch_since
                if memory.fetch or not memory.revision
                else now - min(POLL_SHARE, spec.interval * 0.1)
            )
            memory.fetch = True  # cleared only when the fetch succeeds
            revision = self.loader.fetch(spec, since=since)
            memory.revision = revision
            memory.fetched_at = time.monotonic()
            memory.fetch = False
        return memory.revision

    def _render(self, spec: AppSpec, memory: Memory, revision: str) -> list[Desired]:
        """The path's objects at `revision`, rendered and normalized.

        Keyed by the path's tree id, not the commit: a commit elsewhere in the
        repository leaves the files, and so the render, exactly as they were."""
        tree = self.loader.tree(spec, revision)
        key = (tree or revision, spec.source.path, spec.source.recurse, spec.namespace)
        if memory.render_key == key:
            return memory.desired
        desired = self.loader.render(spec, self.loader.files(spec, revision, tree=tree))
        memory.render_key, memory.desired, memory.tree = key, desired, tree or ""
        return desired

    def _live_state(
        self, refs: Iterable[ObjectRef]
    ) -> tuple[dict[RefKey, Live | None], dict[RefKey, KubeObject | None]]:
        refs = list(refs)
        caches: dict[tuple[str, str], KindCache] = {}
        for ref in refs:
            if (ref.group, ref.kind) not in caches and ref.version:
                caches[(ref.group, ref.kind)] = self.live.kind(ref.api_version, ref.kind)
        if not self.live.wait_synced(list(caches.values()), timeout=15.0):
            raise TransientError("the watches of managed kinds have not listed yet")

        def get(ref: ObjectRef) -> KubeObject | None:
            cache = caches.get((ref.group, ref.kind))
            if cache is not None and not cache.unusable:
                return cache.get(ref.key)
            return self.client.get_ref(ref) if ref.version else None

        return self.loader.live(refs, get)

    def _lookup(self, ref: ObjectRef) -> KubeObject | None:
        cache = self.live.kind(ref.api_version, ref.kind)
        if cache.unusable:
            return self.client.get_ref(ref)
        return cache.get(ref.key)

    def _sync(
        self,
        spec: AppSpec,
        obj: KubeObject,
        previous: dict[str, Any],
        memory: Memory,
        report: Report,
    ) -> float:
        """One pass of the pipeline; returns when to look again (seconds)."""
        waiting = self._dependencies_ready(spec)
        if waiting:
            report.ready = ("False", "DependencyNotReady", waiting)
            report.reconciling = waiting
            if report.health.status in (HealthStatus.UNKNOWN, HealthStatus.MISSING):
                report.health = Health(HealthStatus.PROGRESSING, waiting)
            return self.options.dependency_retry

        # From here until the plan exists, a failure (fetch, credentials, missing path,
        # render, live state) means we could not compare: Unknown, as Argo CD reports a
        # ComparisonError, never the Synced of an earlier run beside Ready=False.
        report.sync = SyncStatus.UNKNOWN
        revision = self._revision(spec, memory)
        report.revision = revision
        report.last_attempted_revision = revision
        desired = self._render(spec, memory, revision)
        if not desired and not spec.allow_empty:
            raise ReconcileFailed(
                "EmptyRender",
                f"path '{spec.source.path}' at {revision[:12]} holds no objects; nothing was applied or pruned "
                "(set syncPolicy.automated.allowEmpty to allow an empty application)",
                stalled=True,
            )
        inventory = memory.inventory
        if inventory is None:
            inventory = Loader.inventory(previous)
            memory.inventory = inventory
            memory.expected = {e.ref.key: e.fields for e in inventory if e.fields}
        live, objects = self._live_state(refs_of(desired, inventory))
        manual = bool(spec.refresh) and spec.refresh != previous.get("lastHandledRefresh")
        plan = make_plan(
            spec.key,
            desired,
            live,
            inventory,
            prune=spec.prune or (manual and not spec.automated),
            allow_empty=spec.allow_empty,
            allow_mass_prune=mass_prune_allowed(spec.allow_mass_prune, revision),
            revision=revision,
        )
        # The comparison's answer stands if applying fails before `_describe` refines it
        # (e.g. the destination namespace cannot be created).
        report.sync = (
            SyncStatus.OUT_OF_SYNC
            if plan.changes or plan.prunes or plan.pending_prunes
            else SyncStatus.SYNCED
        )
        operation = (
            memory.operation if memory.operation and memory.operation.revision == revision else None
        )
        git_changes = any(not s.drift for s in plan.changes) or bool(plan.prunes)
        if spec.self_heal and any(s.drift for s in plan.changes):
            now = time.monotonic()
            memory.heals = [t for t in memory.heals if now - t < 60] + [now]
            if len(memory.heals) > 10:  # something keeps fighting us: back off
                # Resources and sync say which objects differ (OutOfSync), so the status
                # never reads Synced beside "objects keep drifting".
                self._describe(report, plan, [], objects, applied=False)
                report.ready = (
                    "False",
                    "SelfHealBackoff",
                    "objects keep drifting; self-heal backs off for 30s",
                )
                memory.heals = memory.heals[-5:]
                return 30.0
        allowed = (
            operation is not None or manual or (spec.automated and (spec.self_heal or git_changes))
        )
        requeue = 3600.0
        outcomes: list[ApplyOutcome] = []
        failed: list[ApplyOutcome] = []
        pruned = pruning.PruneResult((), (), ())
        finished = not plan.changes and not plan.prunes
        if allowed and (plan.changes or plan.prunes or operation is not None):
            operation = operation or Operation(revision, manual)
            memory.operation = operation
            if spec.create_namespace and spec.namespace:
                self._ensure_namespace(spec.namespace)
            finished = True
            for index, wave in enumerate(plan.waves):
                for group in wave.groups:
                    done = self.applier.apply_group(group)
                    outcomes += done
                    failed += [o for o in done if not o.ok]
                if failed:
                    finished = False
                    break
                if index == len(plan.waves) - 1:
                    break
                _, unhealthy = wave_health(wave.steps, self._lookup)
                if unhealthy:
                    began = operation.wave_started.setdefault(wave.number, time.monotonic())
                    ref, health = unhealthy[0]
                    detail = f"{ref}: {health.message or health.status}"
                    if time.monotonic() - began > spec.wave_timeout:
                        memory.operation = None
                        finished = False
                        self._record_inventory(memory, report, plan, outcomes, pruned)
                        self._describe(report, plan, outcomes, objects, applied=True, pruned=pruned)
                        raise ReconcileFailed(
                            "WaveTimeout",
                            f"wave {wave.number} did not become healthy within {spec.wave_timeout:.0f}s: {detail}",
                            stalled=False,
                        )
                    report.reconciling = f"waiting for wave {wave.number} to be healthy ({len(unhealthy)} not yet): {detail}"
                    log.debug("Application '%s': %s", spec.key, report.reconciling)
                    finished = False
                    requeue = self.options.wave_poll
                    break
            if finished and plan.prunes:
                pruned = pruning.prune(self.client, plan.prunes)
            self.metrics.count(
                applies=len([o for o in outcomes if o.ok]), prunes=len(pruned.deleted)
            )
            if finished or failed:
                memory.operation = None
        self._record_inventory(memory, report, plan, outcomes, pruned)
        synced_now = self._describe(report, plan, outcomes, objects, applied=allowed, pruned=pruned)
        changed = [o for o in outcomes if o.ok]
        if changed or pruned.deleted or pruned.failed:
            created = sum(1 for o in changed if o.step.action is Action.CREATE)
            summary = {
                "created": created,
                "configured": len(changed) - created,
                "unchanged": len(plan.steps) - len(outcomes),
                "pruned": len(pruned.deleted),
                "failed": len(failed) + len(pruned.failed),
            }
            report.summary = summary
            text = ", ".join(f"{k} {v}" for k, v in summary.items() if v)
            self.events.record(
                obj,
                "Synced" if not failed else "SyncFailed",
                f"revision {revision[:12]}: {text}",
                warning=bool(failed),
            )
            log.info("synced Application '%s' at %s: %s", spec.key, revision[:12], text)
        if failed:
            self._namespaces.clear()  # a namespace deleted by hand is created again
            messages = "; ".join(f"{o.step.desired.where}: {o.error}" for o in failed[:3])
            more = f" (and {len(failed) - 3} more)" if len(failed) > 3 else ""
            permanent = all(o.permanent for o in failed)
            raise ReconcileFailed(
                "ApplyFailed",
                f"failed to apply {len(failed)} object(s): {messages}{more}; nothing was pruned",
                stalled=permanent,
            )
        if pruned.failed:
            ref, why = pruned.failed[0]
            count = len(pruned.failed)
            others = f" (and {count - 1} more; they stay too)" if count > 1 else ""
            raise ReconcileFailed(
                "PruneFailed",
                f"failed to delete {ref}: {why}; it stays in the inventory{others}",
                stalled=False,
            )
        if plan.blocked and spec.prune and allowed:
            report.sync = SyncStatus.OUT_OF_SYNC
            raise ReconcileFailed("PruneBlocked", plan.blocked, stalled=True, retry=spec.interval)
        if finished and synced_now:
            report.last_applied_revision = revision
        return requeue

    def _ensure_namespace(self, name: str) -> None:
        if name in self._namespaces:
            return
        try:
            self.client.apply(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
                NAMESPACE_MANAGER,
                force=False,
            )
        except ApiError as error:
            raise ReconcileFailed(
                "CreateNamespaceFailed",
                f"failed to create Namespace '{name}': {error.message}",
                stalled=isinstance(error, Invalid),
            ) from error
        self._namespaces.add(name)

    def _record_inventory(
        self,
        memory: Memory,
        report: Report,
        plan: Plan,
        outcomes: list[ApplyOutcome],
        pruned: pruning.PruneResult,
    ) -> None:
        entries = new_inventory(memory.inventory or [], plan, outcomes, pruned)
        memory.inventory = entries
        memory.expected = {e.ref.key: e.fields for e in entries if e.fields}
        report.inventory = entries

    def _describe(
        self,
        report: Report,
        plan: Plan,
        outcomes: list[ApplyOutcome],
        objects: dict[RefKey, KubeObject | None],
        applied: bool,
        pruned: pruning.PruneResult | None = None,
    ) -> bool:
        return describe(report, plan, outcomes, objects, self._lookup, applied, pruned)

    # ---- deletion ----------------------------------------------------------------------

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
                spec.key, [], live, inventory, prune=True, allow_empty=True, allow_mass_prune=True
            )
            result = pruning.prune(self.client, plan.prunes)
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

    # ---- status ------------------------------------------------------------------------

    def _write_status(
        self, obj: KubeObject, report: Report, previous: dict[str, Any], memory: Memory
    ) -> None:
        status = to_status(report, previous)
        digest = status_digest(status)
        if digest == memory.status_hash:
            return
        key = AppKey.of(obj)
        try:
            live = self.client.merge_patch(
                API_VERSION,
                KIND,
                key.name,
                {"status": status},
                key.namespace,
                subresource="/status",
            )
            memory.status_hash = digest
            memory.status_failing = False
            self.apps.put(live)
            if app_state(obj) != app_state(live):  # the watch will see no change: tell now
                self._notify_related(key, live)
                self._on_managed_event("MODIFIED", obj, live)
        except NotFound:
            return
        except PlatformError as error:
            memory.status_hash = ""
            # Once per outage: the reconcile's own line already says what is wrong.
            level = logging.DEBUG if memory.status_failing else logging.WARNING
            memory.status_failing = True
            log.log(level, "failed to update status of Application '%s': %s", key, error)
