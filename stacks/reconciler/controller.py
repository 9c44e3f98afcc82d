"""The reconciler's controller: one reconcile per Application, on the shared Runtime.

`AppReconciler` is an `ObjectReconciler` (stacks/kube/controller.py): `load` takes the
Application from its cache, the named steps read and fill `Sync` (parts.py), and
`finish` maps the error to conditions and writes status once (a merge patch, skipped
when nothing changed), whatever happened:

    spec            parse the Application (InvalidSpec: stalled, never retried)
    finalize        only while it is being deleted: prune, drop the finalizer (finalize.py)
    dependencies    dependsOn Ready, else wait (DependencyNotReady)
    compare         credentials -> fetch -> files -> render -> normalize -> inventory ->
                    live (desired.py, the loader `platform diff` uses too) -> plan
    policy          may this Application deliver it, as whom (policy.py)
    self-heal gate  may this plan be applied now (waves.py)
    apply           wave by wave, then prune a finished sync (waves.py)
    conclude        record the inventory, describe sync and health (status.py), events,
                    and raise what failed

The `_sync` steps (dependencies to conclude) are those of a live Application.

`AppController` assembles it: the `Shared` collaborators, the parts (triggers.py puts
keys on the queue, waves.py, finalize.py) and a `Runtime` with the reconciler's
settings: `workers` (8 by default) drain the queue; the Applications' cache is built by
the controller (its events go to triggers.py, the managed kinds' LiveCache serves it
too) once the Lease is held; there is no resync: each Application asks to come back
at its interval (default 3 minutes, jittered by 5 %) in its `Result`; errors back off
from 2 s up to the interval (stalled ones too; a blocked prune waits the interval);
when the API server comes back every backoff is reset and every Application looked at
again after RECONNECT_DEBOUNCE.

Waves never block a worker: a wave that is not Healthy yet ends the reconcile with
"waiting for wave N" and the object's next health change (or a short requeue)
continues the same sync. Per-wave timeouts stop a sync that cannot become healthy.

Logs: a failing Application gets one warning line when its state changes (a new
reason), not one per object or per retry (the Runtime's own line is DEBUG then);
per-object failures are DEBUG lines, and the condition, the event and `platform apps`
carry the details.

Called by program.py (the process) and by tests.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from stacks.errors import PermanentError, PlatformError, TransientError
from stacks.kube.cache import KindCache, LiveCache
from stacks.kube.client import KubeClient
from stacks.kube.controller import ObjectReconciler, QueueKey, Result, Runtime, Step, Stop, Watch
from stacks.kube.errors import NotFound
from stacks.kube.events import EventRecorder
from stacks.kube.health import Health, HealthStatus
from stacks.kube.leader import LeaderElector
from stacks.kube.objects import KubeObject, condition_of
from stacks.reconciler.api import API_VERSION, FIELD_MANAGER, KIND, MANAGED_LABEL, AppKey, AppSpec
from stacks.reconciler.apply import Applier
from stacks.reconciler.desired import Loader, ReconcileFailed, refs_of
from stacks.reconciler.events import AsyncEvents
from stacks.reconciler.finalize import DeletionFailed, Finalizer
from stacks.reconciler.memory import Memory
from stacks.reconciler.metrics import ReconcilerMetrics
from stacks.reconciler.parts import ControllerParts, Options, Shared, Sync
from stacks.reconciler.plan import (
    Action,
    Desired,
    accepted_hashes,
    ignoring_differences,
    make_plan,
    mass_prune_allowed,
)
from stacks.reconciler.policy import PolicyGate
from stacks.reconciler.render import RenderError
from stacks.reconciler.source import FetchError, GitCache, redact_url
from stacks.reconciler.status import Report, SyncStatus, app_state, status_digest, to_status
from stacks.reconciler.triggers import RECONNECT_DEBOUNCE, Triggers
from stacks.reconciler.waves import Waves

__all__ = ["AppController", "AppReconciler", "AsyncEvents", "Options"]

log = logging.getLogger(__name__)

# A poll that falls due accepts a fetch of its repository that started this long ago
# (at most a tenth of its interval): Applications on one repository poll at about the
# same time, and one fetch answers them all.
POLL_SHARE = 10.0
INTERVAL_JITTER = 0.05  # Applications created together do not all poll together
FIRST_RETRY = 2.0  # seconds: the first retry of a failed sync


class AppReconciler(ControllerParts, ObjectReconciler[Sync]):
    """One reconcile of one Application: load, the named steps, status in `finish`."""

    def __init__(self, shared: Shared, triggers: Triggers, waves: Waves, finalizer: Finalizer):
        super().__init__(shared)
        self.triggers = triggers
        self.waves = waves
        self.finalizer = finalizer

    # ---- load, steps, finish -----------------------------------------------------------

    def load(self, key: QueueKey) -> Sync | None:
        assert isinstance(key, AppKey)
        obj = self.apps.get(("gitops.platform.local", "Application", key.namespace, key.name))
        if obj is None:
            return None  # deleted: nothing to do (its memory went with its DELETED event)
        log.debug("reconciling Application '%s'", key)
        return Sync(key, obj, dict(obj.get("status") or {}), self.memory(key))

    def steps(self, subject: Sync) -> Sequence[Step[Sync]]:
        return (
            ("spec", self._parse),
            ("finalize", self.finalizer.finalize),  # finalize.py: only while being deleted
            *self._sync(),
        )

    def _sync(self) -> tuple[Step[Sync], ...]:
        """The sync steps of a live Application: they share one signature (they read and
        fill `Sync`; a `Stop` ends the pass early)."""
        return (
            ("dependencies", self._wait_for_dependencies),
            ("compare", self._compare),
            ("policy", self.policy.check),  # policy.py: project rules, who applies
            ("self-heal gate", self.waves._heal_gate),  # waves.py
            ("apply", self.waves._apply_waves),  # waves.py
            ("conclude", self._conclude),
        )

    def finish(self, subject: Sync, result: Result) -> Result:
        sync, error = subject, result.error
        if not sync.parsed:
            if not isinstance(error, PermanentError):
                return result  # a bug before the spec was read: the Runtime logs it
            generation = int((sync.obj.get("metadata") or {}).get("generation") or 0)
            report = Report(generation, {}, {})
            report.fail("InvalidSpec", str(error), stalled=True)
            self._write_status(sync.obj, report, sync.previous, sync.memory)
            # A spec that does not parse is looked at again when it changes, not before.
            return replace(result, retry_stalled=False, logged=True)
        if sync.deleting:
            if isinstance(error, DeletionFailed):
                return self.finalizer.failed(sync, error)
            return result
        return self._conclude_status(sync, result)

    def _conclude_status(self, sync: Sync, result: Result) -> Result:
        """The sync's outcome into conditions, status (written once), metrics, an event
        and a log line on a change of state; the Result with the requeue."""
        spec, memory, report, previous = sync.spec, sync.memory, sync.report, sync.previous
        error = result.error
        jitter = random.uniform(1 - INTERVAL_JITTER, 1 + INTERVAL_JITTER)  # noqa: S311 - not crypto
        requeue = spec.interval * jitter
        outcome = "success"
        final = result
        try:
            if error is None:
                wanted = sync.requeue
                if result.after is not None:
                    wanted = result.after if result.stopped else min(wanted, result.after)
                final = Result(after=max(min(requeue, wanted), 0.05), stopped=result.stopped)
            else:
                outcome, retry = self._fail(sync, error)
                # The Runtime backs off (from 2 s, capped at the interval); a failure with
                # its own retry time (a blocked prune: the interval) comes back then.
                final = Result(
                    error=error,
                    after=min(requeue, retry) if retry is not None else None,
                    max_backoff=spec.interval,
                    step=result.step,
                    logged=isinstance(error, PlatformError),
                )
        finally:
            if spec.refresh and spec.refresh != previous.get("lastHandledRefresh"):
                report.handled_refresh = spec.refresh
            self._write_status(sync.obj, report, previous, memory)
            self.metrics.sync(outcome, time.monotonic() - sync.started)
            if outcome != "success":
                self.metrics.error(outcome)
                message = report.ready[2]
                if message != memory.last_warning:
                    memory.last_warning = message
                    self.events.record(sync.obj, outcome, message, warning=True)
                state = f"{outcome}/{report.ready[1]}"
                if state != memory.logged_state:
                    memory.logged_state = state
                    log.warning("failed to sync Application '%s': %s", sync.key, message)
                else:
                    log.debug("failed to sync Application '%s' again: %s", sync.key, message)
            else:
                memory.last_warning = ""
                if memory.logged_state:
                    memory.logged_state = ""
                    log.info("Application '%s' reconciles again", sync.key)
        return final

    def _fail(self, sync: Sync, error: BaseException) -> tuple[str, float | None]:
        """The one mapping of a sync's error to its condition: (the result for metrics
        and events, the failure's own retry time or None for the backoff)."""
        spec, memory, report = sync.spec, sync.memory, sync.report
        if isinstance(error, ReconcileFailed):
            report.fail(error.reason, str(error), stalled=error.stalled)
            return error.reason, error.retry
        if isinstance(error, RenderError):
            report.sync = SyncStatus.UNKNOWN
            report.fail("RenderFailed", str(error), stalled=True)
            return "RenderFailed", None
        if isinstance(error, FetchError):
            memory.fetch = True
            report.fail(
                "FetchFailed", f"failed to fetch {redact_url(spec.source.repo_url)}: {error}"
            )
            return "FetchFailed", None
        if isinstance(error, TransientError):
            report.fail("ReconcileFailed", str(error))
            return "TransientError", None
        if isinstance(error, PermanentError):
            hint = f" ({error.hint})" if error.hint else ""
            report.fail("Stalled", f"{error}{hint}", stalled=True)
            return "Stalled", None
        if isinstance(error, PlatformError):
            report.fail("ReconcileFailed", str(error))
            return "ReconcileFailed", None
        # A bug: the Runtime logs its traceback; the status says where to look.
        report.fail("ReconcileFailed", "unexpected error; see the reconciler's log")
        return "UnexpectedError", None

    # ---- the steps -----------------------------------------------------------------------

    def _parse(self, sync: Sync) -> None:
        """Read the spec (a PermanentError is InvalidSpec) and start the report from the
        previous status (what this run does not learn stays as it was)."""
        spec = AppSpec.parse(sync.obj)
        previous = sync.previous
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
        sync.spec, sync.report, sync.parsed = spec, report, True

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
        if spec.ignore_differences:
            memory.accepted = accepted_hashes(spec.ignore_differences, plan, sync.objects)
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
            raise self.waves._apply_failed(  # syncPolicy.retry's say (waves.py)
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

    # ---- status --------------------------------------------------------------------------

    def _write_status(
        self, obj: KubeObject, report: Report, previous: dict[str, Any], memory: Memory
    ) -> None:
        """The one status write of a reconcile: a merge patch, skipped when the status is
        what this process last wrote. A failure is logged once per outage and the next
        reconcile writes again (the API server's comeback queues every Application)."""
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
                self.triggers.notify_related(key, live)
                self.triggers.on_managed_event("MODIFIED", obj, live)
        except NotFound:
            return
        except PlatformError as error:
            memory.status_hash = ""
            # Once per outage: the reconcile's own line already says what is wrong.
            level = logging.DEBUG if memory.status_failing else logging.WARNING
            memory.status_failing = True
            log.log(level, "failed to update status of Application '%s': %s", key, error)


class AppController:
    """The reconciler assembled: the shared collaborators, the parts and the Runtime.

    `run(stop, leader, on_lead)` blocks until `stop` (or the Lease is lost); `close()`
    then ends the caches, the applier's threads and the events thread."""

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
        recorder = recorder or EventRecorder(client, "platform-reconciler")
        shared = self.shared = Shared(client, options, self.metrics, AsyncEvents(recorder))
        shared.git = GitCache(options.cache_dir / "git")
        self.triggers = Triggers(shared)
        shared.live = LiveCache(
            client, MANAGED_LABEL, FIELD_MANAGER, self.triggers.on_managed_event, self._recovered
        )
        shared.loader = Loader(
            client, shared.git, options.credentials_file, chart_namespace=options.project_namespace
        )
        shared.applier = Applier(client, self.triggers.remember, options.apply_workers)
        shared.policy = PolicyGate(client, options.project_namespace, options.projects)
        self.reconciler = AppReconciler(shared, self.triggers, Waves(shared), Finalizer(shared))
        self.runtime = Runtime(
            "reconciler",
            client,
            self.reconciler.reconcile,
            [
                Watch(
                    API_VERSION,
                    KIND,
                    self.triggers.seed_keys,
                    namespace=options.watch_namespace,
                    cache=self._watch_applications,
                )
            ],
            workers=options.workers,
            resync_seconds=None,  # each Application's Result asks for its interval
            # Each failed Result caps its backoff at the Application's interval; this
            # (5 minutes) caps it for intervals longer than that, and for bugs.
            max_backoff=options.max_backoff,
            first_backoff=FIRST_RETRY,
            stalled_backoff=True,
            recover_delay=RECONNECT_DEBOUNCE,
            queue=shared.queue,
        )
        shared.backoff = self.runtime.backoff
        self.metrics.gauges["queue_depth"] = lambda: float(shared.queue.depth())
        self.metrics.gauges["managed_objects"] = lambda: float(shared.live.size())
        self.metrics.counters["git_fetches_total"] = lambda: float(shared.git.fetches)
        apps = self.runtime.informers
        self.metrics.gauges["applications"] = lambda: float(
            sum(len(cache) for cache in apps.values())
        )

    def _watch_applications(self) -> KindCache:
        """The Applications' cache, built when the Runtime starts (after the Lease): its
        events go to triggers.py, and the managed kinds' LiveCache serves it too (a child
        Application is a managed object)."""
        shared = self.shared
        shared.apps = KindCache(
            self.client,
            API_VERSION,
            KIND,
            None,
            FIELD_MANAGER,
            self.triggers.on_app_event,
            shared.live.stop,
            persistent=True,
            namespace=self.options.watch_namespace,
            on_recover=self._recovered,
        )
        shared.live.register(shared.apps)
        return shared.apps

    def _recovered(self, cache: KindCache) -> None:
        self.runtime.recovered(cache)

    def on_push(self, repo: str, ref: str, after: str) -> list[AppKey]:
        """The push webhook's handler (triggers.py); only while running."""
        return self.triggers.on_push(repo, ref, after)

    def run(
        self,
        stop: threading.Event,
        leader: LeaderElector | None = None,
        on_lead: Callable[[], None] | None = None,
    ) -> None:
        self.runtime.run(stop, leader, on_lead)

    def close(self) -> None:
        self.shared.live.close()
        self.shared.applier.close()
        self.shared.events.close()
