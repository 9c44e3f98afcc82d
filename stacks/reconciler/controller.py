"""The reconciler's controller: the work queue, its workers and one reconcile per Application.

Its jobs live in parts (parts.py lists them): triggers.py puts keys on the queue (the
Application watch, the push webhook, managed objects' drift and health, dependencies,
the API server coming back) and the interval requeues each Application (default 3
minutes; errors back off by stacks/kube/backoff.py up to the interval).

`reconcile(key)` loads the Application, runs `_sync`, maps its error to conditions and
the requeue in one except ladder, and always writes status in a `finally` (the
ObjectReconciler shape of stacks/kube/controller.py, on the reconciler's own loop).
`_sync` is a few named steps sharing one signature (each reads and fills `Sync`, a
`Stop` ends the pass):

    dependencies    dependsOn Ready, else wait (DependencyNotReady)
    compare         credentials -> fetch -> files -> render -> normalize -> inventory ->
                    live (desired.py, the loader `platform diff` uses too) -> plan
    self-heal gate  may this plan be applied now (waves.py)
    apply           wave by wave, then prune a finished sync (waves.py)
    conclude        record the inventory, describe sync and health (status.py), events,
                    and raise what failed

Waves never block a worker: a wave that is not Healthy yet ends the reconcile with
"waiting for wave N" and the object's next health change (or a short requeue)
continues the same sync. Per-wave timeouts stop a sync that cannot become healthy. A
deleted Application is finalized instead (finalize.py).

Logs: a failing Application gets one warning line when its state changes (a new
reason), not one per object or per retry; per-object failures are DEBUG lines, and the
condition, the event and `platform apps` carry the details.

Called by program.py (the process) and by tests.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import Any

from stacks.errors import PermanentError, PlatformError, TransientError
from stacks.kube import backoff
from stacks.kube.cache import KindCache, LiveCache
from stacks.kube.client import KubeClient
from stacks.kube.controller import Stop
from stacks.kube.errors import NotFound
from stacks.kube.events import EventRecorder
from stacks.kube.health import Health, HealthStatus
from stacks.kube.objects import KubeObject, condition_of
from stacks.kube.queue import WorkQueue
from stacks.reconciler.api import API_VERSION, FIELD_MANAGER, KIND, MANAGED_LABEL, AppKey, AppSpec
from stacks.reconciler.apply import Applier
from stacks.reconciler.desired import Loader, ReconcileFailed, refs_of
from stacks.reconciler.events import AsyncEvents
from stacks.reconciler.finalize import Finalizer
from stacks.reconciler.memory import Memories, Memory
from stacks.reconciler.metrics import ReconcilerMetrics
from stacks.reconciler.parts import Options, Sync
from stacks.reconciler.plan import (
    Action,
    Desired,
    ignoring_differences,
    make_plan,
    mass_prune_allowed,
)
from stacks.reconciler.policy import PolicyGate
from stacks.reconciler.render import RenderError
from stacks.reconciler.source import FetchError, GitCache, redact_url
from stacks.reconciler.status import Report, SyncStatus, app_state, status_digest, to_status
from stacks.reconciler.triggers import Triggers
from stacks.reconciler.waves import Waves

__all__ = ["AppController", "AsyncEvents", "Options"]

log = logging.getLogger(__name__)

# A poll that falls due accepts a fetch of its repository that started this long ago
# (at most a tenth of its interval): Applications on one repository poll at about the
# same time, and one fetch answers them all.
POLL_SHARE = 10.0


class AppController(Triggers, Waves, Finalizer):
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
        self.memories = Memories()
        self.policy = PolicyGate(client, options.project_namespace, options.projects)
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

    # ---- the sync steps ----------------------------------------------------------------

    def _sync(
        self,
        spec: AppSpec,
        obj: KubeObject,
        previous: dict[str, Any],
        memory: Memory,
        report: Report,
    ) -> float:
        """One pass of the pipeline, in named steps that share one signature (they read
        and fill `Sync`; a `Stop` ends the pass early); returns when to look again."""
        sync = Sync(spec, obj, previous, memory, report)
        steps = (
            ("dependencies", self._wait_for_dependencies),
            ("compare", self._compare),
            ("policy", self.policy.check),  # policy.py: project rules, who applies
            ("self-heal gate", self._heal_gate),  # waves.py
            ("apply", self._apply_waves),  # waves.py
            ("conclude", self._conclude),
        )
        for _name, step in steps:
            stop = step(sync)
            if stop is not None:
                return stop.after if stop.after is not None else sync.requeue
        return sync.requeue

    def _wait_for_dependencies(self, sync: Sync) -> Stop | None:
        waiting = self._dependencies_ready(sync.spec)
        if not waiting:
            return None
        report = sync.report
        report.ready = ("False", "DependencyNotReady", waiting)
        report.reconciling = waiting
        if report.health.status in (HealthStatus.UNKNOWN, HealthStatus.MISSING):
            report.health = Health(HealthStatus.PROGRESSING, waiting)
        return Stop(self.options.dependency_retry)

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

    def _compare(self, sync: Sync) -> Stop | None:
        """Desired (fetch, render), recorded (inventory) and live state into a plan."""
        spec, memory, report, previous = (sync.spec, sync.memory, sync.report, sync.previous)
        # From here until the plan exists, a failure (fetch, credentials, missing path,
        # render, live state) means we could not compare: Unknown, as Argo CD reports a
        # ComparisonError, never the Synced of an earlier run beside Ready=False.
        report.sync = SyncStatus.UNKNOWN
        revision = self._revision(spec, memory)
        sync.revision = revision
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
        live, sync.objects = self._live_state(refs_of(desired, inventory))
        live = ignoring_differences(
            spec.ignore_differences, desired, live, sync.objects, self.client.get_ref
        )
        sync.manual = bool(spec.refresh) and spec.refresh != previous.get("lastHandledRefresh")
        sync.plan = plan = make_plan(
            spec.key,
            desired,
            live,
            inventory,
            prune=spec.prune or (sync.manual and not spec.automated),
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
        sync.operation = (
            memory.operation if memory.operation and memory.operation.revision == revision else None
        )
        return None

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

    def _conclude(self, sync: Sync) -> Stop | None:
        """Record the inventory, describe the result, and raise what failed."""
        spec, memory, report, plan = sync.spec, sync.memory, sync.report, sync.plan
        outcomes, failed, pruned, revision = (
            sync.outcomes,
            sync.failed,
            sync.pruned,
            sync.revision,
        )
        self._record_inventory(memory, report, plan, outcomes, pruned)
        synced_now = self._describe(
            report, plan, outcomes, sync.objects, applied=sync.allowed, pruned=pruned
        )
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
                sync.obj,
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
            raise self._apply_failed(  # syncPolicy.retry's say (waves.py)
                sync,
                ReconcileFailed(
                    "ApplyFailed",
                    f"failed to apply {len(failed)} object(s): {messages}{more}; nothing was pruned",
                    stalled=permanent,
                ),
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
        if plan.blocked and spec.prune and sync.allowed:
            report.sync = SyncStatus.OUT_OF_SYNC
            raise ReconcileFailed("PruneBlocked", plan.blocked, stalled=True, retry=spec.interval)
        if sync.finished and synced_now:
            report.last_applied_revision = revision
        return None

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
