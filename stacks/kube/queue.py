"""A work queue of keys with client-go semantics, plus delayed adds.

A key is never processed by two workers at once; adding a key that is being processed
marks it dirty and it runs again when `done()` is called; adding a key that is already
waiting does nothing; `add(key, delay)` keeps only the earliest pending due time.

Used by the reconciler's controller and by the controller runtime in
stacks/kube/controller.py (secrets, certs, dns); /metrics read its depth.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from typing import Generic, TypeVar

K = TypeVar("K")


class WorkQueue(Generic[K]):
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: deque[K] = deque()
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._heap: list[tuple[float, int, K]] = []
        self._due: dict[K, float] = {}
        self._seq = itertools.count()
        self._closed = False

    def add(self, key: K, delay: float = 0.0) -> None:
        with self._cond:
            if self._closed:
                return
            if delay > 0:
                when = time.monotonic() + delay
                if key in self._due and self._due[key] <= when:
                    return
                self._due[key] = when
                heapq.heappush(self._heap, (when, next(self._seq), key))
                self._cond.notify()
                return
            self._add_now(key)

    def _add_now(self, key: K) -> None:
        if key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:
            self._queue.append(key)
            self._cond.notify()

    def _promote(self) -> float | None:
        """Move due delayed keys to the queue; seconds until the next one (None: none)."""
        now = time.monotonic()
        while self._heap:
            when, _, key = self._heap[0]
            if self._due.get(key) != when:
                heapq.heappop(self._heap)  # superseded by an earlier add
                continue
            if when > now:
                return when - now
            heapq.heappop(self._heap)
            del self._due[key]
            self._add_now(key)
        return None

    def get(self, timeout: float = 1.0) -> K | None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._closed:
                wait = self._promote()
                if self._queue:
                    key = self._queue.popleft()
                    self._dirty.discard(key)
                    self._processing.add(key)
                    return key
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(min(left, wait) if wait is not None else left)
            return None

    def done(self, key: K) -> None:
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                self._queue.append(key)
                self._cond.notify()

    def depth(self) -> int:
        with self._cond:
            return len(self._queue)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
