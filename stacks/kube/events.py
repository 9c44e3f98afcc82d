"""Kubernetes Events for controllers: one Event per change set or failure, never secrets.

`EventRecorder.record(obj, reason, message, warning=False)` creates a core/v1 Event
about `obj` (shown by `kubectl describe` and `kubectl get events`). Recording is best
effort: a failure is logged (once until an Event is created again, so an API server
outage is one line, not one per Event) and swallowed, so an Event never breaks a
reconcile.
Identical events about the same object within `dedupe_seconds` are dropped.

Called by the reconciler and the other controllers (secrets, certs, dns).
"""

from __future__ import annotations

import datetime as dt
import logging
import socket
import threading
import time
from typing import Protocol

from stacks.errors import PlatformError, trim
from stacks.kube.objects import KubeObject

log = logging.getLogger(__name__)


class EventSink(Protocol):
    def create(self, obj: KubeObject) -> KubeObject: ...


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class EventRecorder:
    def __init__(self, sink: EventSink, component: str, dedupe_seconds: float = 5.0) -> None:
        self._sink = sink
        self._component = component
        self._instance = socket.gethostname()
        self._dedupe = dedupe_seconds
        self._recent: dict[tuple[str, str, str, str], float] = {}
        self._lock = threading.Lock()
        self._failing = False

    def record(self, obj: KubeObject, reason: str, message: str, warning: bool = False) -> None:
        meta = obj.get("metadata") or {}
        namespace = str(meta.get("namespace") or "default")
        name = str(meta.get("name", ""))
        message = trim(message, 1000)
        key = (namespace, name, reason, message)
        now = time.monotonic()
        with self._lock:
            if now - self._recent.get(key, -1e9) < self._dedupe:
                return
            self._recent[key] = now
            if len(self._recent) > 2000:
                self._recent = {k: v for k, v in self._recent.items() if now - v < self._dedupe}
        stamp = _now()
        event: KubeObject = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{name}.", "namespace": namespace},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion", ""),
                "kind": obj.get("kind", ""),
                "name": name,
                "namespace": namespace,
                "uid": meta.get("uid", ""),
                "resourceVersion": meta.get("resourceVersion", ""),
            },
            "reason": reason,
            "message": message,
            "type": "Warning" if warning else "Normal",
            "source": {"component": self._component},
            "reportingComponent": self._component,
            "reportingInstance": self._instance,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        try:
            self._sink.create(event)
        except PlatformError as error:
            level = logging.DEBUG if self._failing else logging.WARNING
            self._failing = True
            log.log(level, "failed to create Event '%s/%s': %s", namespace, name, error)
            return
        self._failing = False
