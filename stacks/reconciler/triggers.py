"""What puts an Application on the queue, and the mapping of watch events to keys.

- its watch (`on_app_event`): created, spec changed, refresh annotation, being deleted;
- the git server's push webhook (`on_push`): one fetch of the repository serves every
  Application following it (none when the cache already has the announced commit), and
  the changed paths' files are read for all of them in two git runs; the Applications
  whose path's tree changed are queued first, the others after them for a cheap
  revision bump (their render is reused because it is keyed by the path's tree id, and
  an unchanged plan applies nothing), so one changed app never waits behind a hundred
  unchanged ones;
- managed objects (`on_managed_event`): deleted, edited in a field we own, or whose
  health changed (wave gates, app health), with a short debounce;
- a dependency's or child's status change (`notify_related`: dependsOn, app-of-apps);
- start-up (`seed_keys`, the Runtime's seeding: every Application fetches once).

The Runtime (stacks/kube/controller.py) drains the queue; the API server coming back
after an outage is its job too (every key's backoff reset, every Application looked at
again after RECONNECT_DEBOUNCE), as the caches' `on_recover` reports to it.

A part of the controller (see parts.py); its handlers are the caches' event handlers.
"""

from __future__ import annotations

import logging
import threading
import time

from stacks.errors import PermanentError, PlatformError
from stacks.kube.client import WatchEvent
from stacks.kube.controller import QueueKey
from stacks.kube.health import health_of
from stacks.kube.objects import KubeObject, ObjectRef, annotations_of
from stacks.reconciler.api import TRACKING, AppKey, AppSpec, owner_of_tracking
from stacks.reconciler.parts import ControllerParts
from stacks.reconciler.plan import fields_hash
from stacks.reconciler.source import Credentials, redact_url
from stacks.reconciler.status import app_state

log = logging.getLogger(__name__)

# After the API server returns, kinds relist one after another within moments: wait this
# long so one reconcile sees them all, instead of one per kind.
RECONNECT_DEBOUNCE = 0.3


def _same_repo(url: str, repo: str) -> bool:
    def norm(text: str) -> str:
        text = redact_url(text).rstrip("/")
        return text.removesuffix(".git")

    a, b = norm(url), norm(repo)
    return a == b or a.endswith("/" + b.lstrip("/"))


class Triggers(ControllerParts):
    def seed_keys(self, event: WatchEvent) -> list[QueueKey]:
        """The Runtime's mapping of a cached Application to its key: at start-up
        (ADDED) it fetches first; after a comeback (MODIFIED) it only looks again."""
        key = AppKey.of(event.object)
        if event.type == "ADDED":
            memory = self.memory(key)
            memory.fetch_since = time.monotonic()
            memory.fetch = True
        return [key]

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

    def on_app_event(self, kind: str, old: KubeObject | None, new: KubeObject | None) -> None:
        obj = new or old
        if obj is None:
            return
        key = AppKey.of(obj)
        if self.options.watch_namespace and key.namespace != self.options.watch_namespace:
            return
        if kind == "DELETED":
            self.memories.forget(key)
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
            self.notify_related(key, obj)
        self.on_managed_event(kind, old, new)  # a child Application is also a managed object

    def notify_related(self, key: AppKey, obj: KubeObject) -> None:
        for other_key in self.apps.all_keys():
            other = self.apps.get(other_key)
            if other is None:
                continue
            for dep in (other.get("spec") or {}).get("dependsOn") or []:
                dep_ns = dep.get("namespace") or other_key[2]
                if dep_ns == key.namespace and dep.get("name") == key.name:
                    self.enqueue(AppKey(other_key[2], other_key[3]))

    def on_managed_event(self, kind: str, old: KubeObject | None, new: KubeObject | None) -> None:
        obj = new or old
        if obj is None:
            return
        owner = owner_of_tracking(annotations_of(obj).get(TRACKING, ""))
        if owner is None:
            return
        if self.options.watch_namespace and owner.namespace != self.options.watch_namespace:
            return
        memory = self.memories.get(owner)
        if memory is None or memory.inventory is None:  # not reconciled yet: let it look
            self.queue.add(owner, delay=self.options.drift_debounce)
            return
        key = ObjectRef.of(obj).key
        expected = memory.expected.get(key)
        if kind == "DELETED":
            trigger = expected is not None
        else:
            current = fields_hash(obj) if expected is not None else ""
            drifted = (
                expected is not None and current != expected and current != memory.accepted.get(key)
            )
            health_changed = old is not None and health_of(old) != health_of(obj)
            trigger = drifted or health_changed
        if trigger:
            self.queue.add(owner, delay=self.options.drift_debounce)

    def remember(self, live: KubeObject) -> None:
        ref = ObjectRef.of(live)
        self.live.kind(ref.api_version, ref.kind).put(live)
        owner = owner_of_tracking(annotations_of(live).get(TRACKING, ""))
        if owner is not None:
            self.memory(owner).expected[ref.key] = fields_hash(live)
