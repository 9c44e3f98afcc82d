"""The one backoff formula of the controllers: 1 s, doubling per failure, capped.

    delay(1) = 1 s, delay(2) = 2 s, delay(3) = 4 s, ... min(cap, 2 ** min(n - 1, 10))

The exponent stops at 10 (about 17 minutes) so that a long cap (a one-hour interval)
is not reached by one giant step. `Backoff` keeps the failure count per key, and
`reset()` forgets them all: a controller calls it when a dependency comes back (the
API server after an outage) so every key is looked at again at once.

Called by the controller runtime (stacks/kube/controller.py), for every controller
including the reconciler (whose first retry is 2 s: `first`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
MAX_EXPONENT = 10


def delay(attempt: int, cap: float, first: float = 1.0) -> float:
    """Seconds to wait before retry number `attempt` (1 for the first failure), the
    first one `first` seconds (the reconciler's is 2 s), never beyond 2 ** MAX_EXPONENT."""
    steps = min(max(attempt, 1) - 1, MAX_EXPONENT)
    return float(min(cap, 2.0**MAX_EXPONENT, first * 2.0**steps))


class Backoff(Generic[K]):
    """Failure counts per key; thread-safe."""

    def __init__(
        self, cap: float, clock: Callable[[], float] = time.monotonic, first: float = 1.0
    ) -> None:
        self.cap = cap
        self.first = first
        self._clock = clock
        self._failures: dict[K, tuple[int, float]] = {}  # attempts, retry not before
        self._lock = threading.Lock()

    def failed(self, key: K, cap: float | None = None, first: float | None = None) -> float:
        """Count a failure of `key`; the seconds to wait before trying it again (`first`:
        this failure's own first delay, e.g. a deletion's 1 s where syncs start at 2 s)."""
        with self._lock:
            attempts = self._failures.get(key, (0, 0.0))[0] + 1
            wait = delay(
                attempts,
                self.cap if cap is None else max(1.0, min(cap, self.cap)),
                self.first if first is None else first,
            )
            self._failures[key] = (attempts, self._clock() + wait)
        return wait

    def attempts(self, key: K) -> int:
        with self._lock:
            return self._failures.get(key, (0, 0.0))[0]

    def remaining(self, key: K) -> float:
        """Seconds until `key`'s backoff is over (0 when it has none)."""
        with self._lock:
            entry = self._failures.get(key)
        return max(0.0, entry[1] - self._clock()) if entry else 0.0

    def forget(self, key: K) -> None:
        """`key` succeeded (or is gone): its next failure starts at 1 s again."""
        with self._lock:
            self._failures.pop(key, None)

    def reset(self) -> None:
        """Forget every key's failures (a dependency came back)."""
        with self._lock:
            self._failures.clear()
