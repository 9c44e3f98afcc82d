"""Prometheus text metrics of the reconciler (no client library: a few counters suffice).

    platform_reconciler_syncs_total{result}            reconciles by outcome
    platform_reconciler_sync_duration_seconds          histogram of reconcile durations
    platform_reconciler_errors_total{reason}           failures by reason
    platform_reconciler_applies_total, _prunes_total   objects written / deleted
    platform_reconciler_queue_depth                    apps waiting in the work queue
    platform_reconciler_managed_objects                objects in the live caches
    platform_reconciler_leader                         1 while this replica leads
    platform_reconciler_git_fetches_total              `git fetch` runs (coalesced per repo)

Written by the controller, read by the HTTP server's /metrics.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class ReconcilerMetrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.syncs: dict[str, int] = {}
        self.errors: dict[str, int] = {}
        self.applies = 0
        self.prunes = 0
        self.duration_buckets = [0] * len(BUCKETS)
        self.duration_sum = 0.0
        self.duration_count = 0
        self.gauges: dict[str, Callable[[], float]] = {}
        self.counters: dict[str, Callable[[], float]] = {}  # read from their owner

    def sync(self, result: str, seconds: float) -> None:
        with self._lock:
            self.syncs[result] = self.syncs.get(result, 0) + 1
            self.duration_sum += seconds
            self.duration_count += 1
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    self.duration_buckets[i] += 1

    def error(self, reason: str) -> None:
        with self._lock:
            self.errors[reason] = self.errors.get(reason, 0) + 1

    def count(self, applies: int = 0, prunes: int = 0) -> None:
        with self._lock:
            self.applies += applies
            self.prunes += prunes

    def render(self) -> str:
        p = "platform_reconciler"
        lines: list[str] = []
        with self._lock:
            lines += [
                f"# HELP {p}_syncs_total Reconciles of Applications by result.",
                f"# TYPE {p}_syncs_total counter",
            ]
            lines += [f'{p}_syncs_total{{result="{k}"}} {v}' for k, v in sorted(self.syncs.items())]
            lines += [
                f"# HELP {p}_errors_total Failed reconciles by reason.",
                f"# TYPE {p}_errors_total counter",
            ]
            lines += [
                f'{p}_errors_total{{reason="{k}"}} {v}' for k, v in sorted(self.errors.items())
            ]
            lines += [f"# TYPE {p}_applies_total counter", f"{p}_applies_total {self.applies}"]
            lines += [f"# TYPE {p}_prunes_total counter", f"{p}_prunes_total {self.prunes}"]
            lines += [
                f"# HELP {p}_sync_duration_seconds Time to reconcile one Application.",
                f"# TYPE {p}_sync_duration_seconds histogram",
            ]
            for bound, count in zip(BUCKETS, self.duration_buckets, strict=True):
                lines.append(f'{p}_sync_duration_seconds_bucket{{le="{bound}"}} {count}')
            lines.append(f'{p}_sync_duration_seconds_bucket{{le="+Inf"}} {self.duration_count}')
            lines.append(f"{p}_sync_duration_seconds_sum {self.duration_sum:.6f}")
            lines.append(f"{p}_sync_duration_seconds_count {self.duration_count}")
            gauges = dict(self.gauges)
            counters = dict(self.counters)
        for name, read in sorted(counters.items()):
            lines += [f"# TYPE {p}_{name} counter", f"{p}_{name} {read():g}"]
        for name, read in sorted(gauges.items()):
            lines += [f"# TYPE {p}_{name} gauge", f"{p}_{name} {read():g}"]
        return "\n".join(lines) + "\n"
