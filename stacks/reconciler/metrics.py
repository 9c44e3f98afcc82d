"""Prometheus metrics of the reconciler, collected by prometheus_client when scraped.

    platform_reconciler_syncs_total{result}            reconciles by outcome
    platform_reconciler_sync_duration_seconds          histogram of reconcile durations
    platform_reconciler_errors_total{reason}           failures by reason
    platform_reconciler_applies_total, _prunes_total   objects written / deleted
    platform_reconciler_queue_depth                    apps waiting in the work queue
    platform_reconciler_managed_objects                objects in the live caches
    platform_reconciler_leader                         1 while this replica leads
    platform_reconciler_git_fetches_total              `git fetch` runs (coalesced per repo)

Written by the controller (plain integers under a lock on the hot path); registered as a
Collector with the program's shared /metrics (stacks/program.py), beside the process_*
metrics of every program.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class ReconcilerMetrics(Collector):
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

    def collect(self) -> Iterator[Metric]:
        """The families for /metrics (a prometheus_client Collector, read when scraped)."""
        p = "platform_reconciler"
        with self._lock:
            syncs = CounterMetricFamily(
                f"{p}_syncs", "Reconciles of Applications by result.", labels=["result"]
            )
            for result, count in sorted(self.syncs.items()):
                syncs.add_metric([result], count)
            errors = CounterMetricFamily(
                f"{p}_errors", "Failed reconciles by reason.", labels=["reason"]
            )
            for reason, count in sorted(self.errors.items()):
                errors.add_metric([reason], count)
            applies = CounterMetricFamily(f"{p}_applies", "Objects written.", value=self.applies)
            prunes = CounterMetricFamily(f"{p}_prunes", "Objects deleted.", value=self.prunes)
            buckets = [
                (str(bound), float(count))
                for bound, count in zip(BUCKETS, self.duration_buckets, strict=True)
            ]
            duration = HistogramMetricFamily(
                f"{p}_sync_duration_seconds",
                "Time to reconcile one Application.",
                buckets=[*buckets, ("+Inf", float(self.duration_count))],
                sum_value=self.duration_sum,
            )
            gauges = dict(self.gauges)
            counters = dict(self.counters)
        yield from (syncs, errors, applies, prunes, duration)
        for name, read in sorted(counters.items()):
            text = name.removesuffix("_total").replace("_", " ")
            yield CounterMetricFamily(f"{p}_{name.removesuffix('_total')}", text, value=read())
        for name, read in sorted(gauges.items()):
            yield GaugeMetricFamily(f"{p}_{name}", name.replace("_", " "), value=read())
