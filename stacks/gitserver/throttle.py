"""Slow down password guessing: a budget of failed logins per client address.

`app.py` asks `Gatekeeper.check()` for every request that carries credentials, and
`guard.py` asks `Gatekeeper.admits()` (no side effects) before it buffers a request body.
Each client address may fail `burst` logins; the budget refills evenly over `window`
seconds (a token bucket). With the budget spent, requests with credentials from that
address get 429 with Retry-After, without their password being compared, so guesses
stop being checked rather than just being answered later. Requests without credentials
(every git client's first request) and successful logins never spend the budget, so
normal use is never slowed. Passwords are still compared in constant time (auth.py).

Behind the ingress every outside client shares the ingress controller's address: a
guesser there can make outside clients wait for the window, never learn a password.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from stacks.gitserver.auth import CredentialStore, User, parse_basic

log = logging.getLogger("platform.gitserver.throttle")

MAX_TRACKED = 10_000  # client addresses remembered at once (least recently failed dropped)


class LoginThrottle:
    """Token bucket of failed logins per client address."""

    def __init__(
        self, burst: int = 10, window: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.burst = burst
        self.window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at

    @property
    def enabled(self) -> bool:
        return self.burst > 0

    def _tokens(self, client: str, now: float) -> float:
        tokens, at = self._buckets.get(client, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - at) * self.burst / self.window)

    def retry_after(self, client: str) -> float:
        """Seconds until `client` may try a password again; 0 when it may now."""
        if not self.enabled:
            return 0.0
        with self._lock:
            tokens = self._tokens(client, self._clock())
        return 0.0 if tokens >= 1 else (1 - tokens) * self.window / self.burst

    def failed(self, client: str) -> None:
        """Spend one failure of `client`'s budget."""
        if not self.enabled:
            return
        with self._lock:
            now = self._clock()
            tokens = self._tokens(client, now) - 1
            self._buckets[client] = (tokens, now)
            self._buckets.move_to_end(client)
            while len(self._buckets) > MAX_TRACKED:
                self._buckets.popitem(last=False)
        if tokens < 1 <= tokens + 1:  # just ran out: once per episode, not per request
            log.warning(
                "throttling logins from %s: %d failed logins within %.0f s",
                client,
                self.burst,
                self.window,
            )


@dataclass(frozen=True)
class Verdict:
    """The outcome of a request's credentials: a user, or None; `retry_after` > 0 when
    the client is throttled (its password was not checked)."""

    user: User | None
    retry_after: float = 0.0


class Gatekeeper:
    """Credentials plus the failed-login throttle: the one place a login is decided."""

    def __init__(self, credentials: CredentialStore, throttle: LoginThrottle) -> None:
        self.credentials = credentials
        self.throttle = throttle

    def check(self, header: str | None, client: str) -> Verdict:
        """Authenticate one request; a wrong or malformed login spends `client`'s budget."""
        if not header:
            return Verdict(None)
        wait = self.throttle.retry_after(client)
        if wait > 0:
            return Verdict(None, wait)
        user = self.credentials.authenticate(header)
        if user is None:
            self.throttle.failed(client)
        return Verdict(user)

    def admits(self, header: str | None, client: str) -> bool:
        """Whether `check()` would let this request in; spends nothing (used before a
        body is buffered, so the application's own `check()` counts the failure once)."""
        if not header or parse_basic(header) is None:
            return False
        if self.throttle.retry_after(client) > 0:
            return False
        return self.credentials.authenticate(header) is not None
