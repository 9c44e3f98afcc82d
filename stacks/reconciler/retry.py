"""syncPolicy.retry: how often, and how long after, a failed sync is tried again. Pure.

Argo CD's fields and defaults: `limit` (retries after the first attempt; 0 = none, a
negative number = no limit), `backoff.duration` (default 5s; a bare number is seconds),
`backoff.factor` (default 2) and `backoff.maxDuration` (default 3m). Retry n (1 for the
first) waits duration * factor^(n-1), at most maxDuration.

Without `syncPolicy.retry`, a sync whose hook failed is not tried again at the same
revision (Argo CD: one attempt per revision); a push, a `platform sync` or a change of
the Application starts a new one. (A sync whose apply failed keeps this reconciler's own
backoff, up to the interval, which heals transient API errors.)

Called by api.py (parsing) and waves.py (after a failed sync).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stacks.kube.durations import parse_seconds

DEFAULT_DURATION = 5.0
DEFAULT_FACTOR = 2.0
DEFAULT_MAX_DURATION = 180.0
# A factor this large already reaches any maxDuration on the second retry; bounding it
# keeps the power finite.
MAX_FACTOR = 1000.0


@dataclass(frozen=True)
class RetryPolicy:
    limit: int = 0  # retries after the first attempt; < 0: no limit
    duration: float = DEFAULT_DURATION
    factor: float = DEFAULT_FACTOR
    max_duration: float = DEFAULT_MAX_DURATION

    @classmethod
    def parse(cls, raw: Any) -> RetryPolicy | None:
        """`syncPolicy.retry`, or None when absent; ValueError names the bad field."""
        if raw is None:
            return None
        if not isinstance(raw, dict):
            raise ValueError("syncPolicy.retry must be an object")
        try:
            limit = int(raw.get("limit", 0) or 0)
        except (TypeError, ValueError):
            raise ValueError("syncPolicy.retry.limit must be an integer") from None
        backoff = raw.get("backoff") or {}
        if not isinstance(backoff, dict):
            raise ValueError("syncPolicy.retry.backoff must be an object")
        duration = _seconds(backoff.get("duration"), DEFAULT_DURATION, "duration")
        maximum = _seconds(backoff.get("maxDuration"), DEFAULT_MAX_DURATION, "maxDuration")
        try:
            raw_factor = backoff.get("factor")
            factor = DEFAULT_FACTOR if raw_factor is None else float(raw_factor)
        except (TypeError, ValueError):
            raise ValueError("syncPolicy.retry.backoff.factor must be a number") from None
        if factor < 1:
            raise ValueError("syncPolicy.retry.backoff.factor must be at least 1")
        return cls(limit, duration, min(factor, MAX_FACTOR), max(maximum, duration))

    def allows(self, retries_done: int) -> bool:
        """Whether one more retry is allowed after `retries_done` retries."""
        return self.limit < 0 or retries_done < self.limit

    def delay(self, retry: int) -> float:
        """Seconds before retry number `retry` (1 for the first)."""
        exponent = min(max(retry, 1) - 1, 64)
        return float(min(self.max_duration, self.duration * self.factor**exponent))

    def describe_limit(self) -> str:
        return "no limit" if self.limit < 0 else str(self.limit)


def _seconds(value: Any, default: float, name: str) -> float:
    if value is None or value == "":
        return default
    try:
        return parse_seconds(str(value), bare_seconds=True)
    except ValueError as error:
        raise ValueError(f"syncPolicy.retry.backoff.{name}: {error}") from None
