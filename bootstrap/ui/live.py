"""Live updates: one watch on Applications for the whole server, fanned out to browsers.

`AppFeed` keeps a list+watch cache of Applications (stacks/kube/cache.py's KindCache, the
reconciler's own, which re-lists after an outage and waits for the CRD when the platform
is not installed yet). Every change it hears is turned once into a message by the
`describe` callback the site gives it (the rows to swap in, an activity line) and put
in each subscriber's queue; an event stream (server.py) writes its queue to one tab. So
ten open tabs cost one watch and one description per change, not ten pollers.

A subscriber's queue is bounded: a tab that stops reading loses old messages rather
than growing the server (it asks for a fresh page when it notices, see app.js).

The activity log remembers what happened to each Application in the words a person
watching a push wants to see: "new revision abc1234", "syncing", "Synced and Healthy".

Called by bootstrap/ui/site.py.
"""

from __future__ import annotations

import collections
import contextlib
import json
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stacks.kube.cache import KindCache, Lister
from stacks.kube.objects import KubeObject, condition_of
from stacks.reconciler.api import API_VERSION, KIND

SUBSCRIBER_QUEUE = 200
ACTIVITY_LINES = 50


@dataclass(frozen=True)
class AppState:
    """The part of an Application's status the activity log compares."""

    key: str
    revision: str
    sync: str
    health: str
    reconciling: bool
    message: str

    @classmethod
    def of(cls, obj: KubeObject) -> AppState:
        meta = obj.get("metadata") or {}
        status = obj.get("status") or {}
        ready = condition_of(obj, "Ready") or {}
        reconciling = condition_of(obj, "Reconciling") or {}
        return cls(
            key=f"{meta.get('namespace', '')}/{meta.get('name', '')}",
            revision=str((status.get("sync") or {}).get("revision") or ""),
            sync=str((status.get("sync") or {}).get("status") or "Unknown"),
            health=str((status.get("health") or {}).get("status") or "Unknown"),
            reconciling=reconciling.get("status") == "True",
            message=str(ready.get("message") or (status.get("health") or {}).get("message") or ""),
        )

    @property
    def settled(self) -> bool:
        return self.sync == "Synced" and self.health == "Healthy" and not self.reconciling


def transitions(old: AppState | None, new: AppState) -> list[str]:
    """Activity lines for one change of an Application (pure; empty when nothing a
    person would notice changed)."""
    name = new.key.rpartition("/")[2]
    lines = []
    if old is not None and new.revision and new.revision != old.revision:
        lines.append(f"{name}: new revision {new.revision[:7]} (was {old.revision[:7] or 'none'})")
    before = (old.sync, old.health, old.reconciling) if old is not None else None
    if (new.sync, new.health, new.reconciling) == before and not lines:
        return lines
    if new.settled:
        if old is None or not old.settled or lines:
            lines.append(f"{name}: Synced and Healthy at {new.revision[:7]}")
    elif new.reconciling or new.health in ("Progressing", "Missing") or new.sync == "OutOfSync":
        detail = f" ({new.message[:120]})" if new.message else ""
        lines.append(f"{name}: syncing: {new.sync}/{new.health}{detail}")
    else:
        lines.append(f"{name}: {new.sync}/{new.health}: {new.message[:200]}")
    return lines


class Subscription:
    """One tab's queue of messages (server.Stream)."""

    def __init__(self, feed: AppFeed) -> None:
        self._feed = feed
        self.queue: queue.Queue[str | None] = queue.Queue(SUBSCRIBER_QUEUE)

    def next(self, timeout: float) -> str | None:
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            return ""

    def offer(self, message: str | None) -> None:
        try:
            self.queue.put_nowait(message)
        except queue.Full:  # a tab that stopped reading: drop its oldest message
            with contextlib.suppress(queue.Empty):
                self.queue.get_nowait()
            with contextlib.suppress(queue.Full):
                self.queue.put_nowait(message)

    def close(self) -> None:
        self._feed.unsubscribe(self)


Describe = Callable[[KubeObject | None, str], dict[str, Any]]


class AppFeed:
    """The Applications of the cluster, watched once, and the tabs that listen."""

    def __init__(self, client: Lister, describe: Describe) -> None:
        self._describe = describe
        self._subscribers: set[Subscription] = set()
        self._lock = threading.Lock()
        self._states: dict[str, AppState] = {}
        self.activity: collections.deque[tuple[float, str]] = collections.deque(
            maxlen=ACTIVITY_LINES
        )
        self.stop = threading.Event()
        # persistent: before the platform is installed the CRD is missing; the cache
        # then waits for it and lists as soon as it is Established.
        self.cache = KindCache(
            client,
            API_VERSION,
            KIND,
            None,
            None,
            self._changed,
            self.stop,
            persistent=True,
            on_recover=self._recovered,
        )

    def apps(self) -> list[KubeObject]:
        return sorted(
            self.cache.items(),
            key=lambda o: ((o.get("metadata") or {}).get("namespace", ""), o["metadata"]["name"]),
        )

    def get(self, namespace: str, name: str) -> KubeObject | None:
        return self.cache.get_named(namespace, name)

    def subscribe(self) -> Subscription:
        subscription = Subscription(self)
        with self._lock:
            self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscribers.discard(subscription)

    def subscribers(self) -> int:
        with self._lock:
            return len(self._subscribers)

    def close(self) -> None:
        self.stop.set()
        self.cache.close()
        with self._lock:
            subscribers = list(self._subscribers)
        for subscription in subscribers:
            subscription.offer(None)

    def _recovered(self, cache: KindCache) -> None:
        # The cluster answers again after an outage: every tab loads its page anew, which
        # drops the "down" banner and shows what changed meanwhile.
        self.activity.append((time.time(), "the cluster answers again"))
        self._broadcast(json.dumps({"reload": True}))

    def _broadcast(self, text: str) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for subscription in subscribers:
            subscription.offer(text)

    def _changed(self, kind: str, old: KubeObject | None, new: KubeObject | None) -> None:
        obj = new if new is not None else old
        if obj is None:
            return
        meta = obj.get("metadata") or {}
        key = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
        lines: list[str] = []
        with self._lock:
            if new is None:
                self._states.pop(key, None)
                lines = [f"{meta.get('name', '')}: deleted"]
            else:
                state = AppState.of(new)
                # The first list is not announced: the copy before a change is then
                # the one the cache listed.
                previous = self._states.get(key) or (AppState.of(old) if old else None)
                lines = transitions(previous, state)
                self._states[key] = state
            now = time.time()
            for line in lines:
                self.activity.append((now, line))
            if not self._subscribers:
                return
        # Described once for every tab, outside the lock (it may read the cluster).
        message = self._describe(new, key)
        message["activity"] = [[now, line] for line in lines]
        self._broadcast(json.dumps(message))
