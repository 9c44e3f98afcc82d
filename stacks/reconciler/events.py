"""Events of the reconciler, posted in the background (see AsyncEvents).

Called by the controller.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from stacks.kube.objects import KubeObject
from stacks.reconciler.api import AppKey

log = logging.getLogger(__name__)


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
