"""The reconciler on the shared Runtime: its settings, which decide every retry."""

from __future__ import annotations

from pathlib import Path
from typing import cast

from stacks.errors import PermanentError, TransientError
from stacks.kube.client import KubeClient
from stacks.kube.controller import Result
from stacks.kube.events import EventRecorder
from stacks.reconciler.api import AppKey
from stacks.reconciler.controller import AppController, Options
from stacks.reconciler.finalize import DeletionFailed, Finalizer


def test_the_reconciler_runs_on_the_shared_runtime_with_its_own_settings(tmp_path: Path) -> None:
    # Nothing here talks to an API server: the controller starts its caches only in run().
    controller = AppController(
        cast(KubeClient, None), Options(cache_dir=tmp_path), recorder=cast(EventRecorder, None)
    )
    try:
        runtime = controller.runtime
        assert runtime.workers == 8
        assert runtime.resync_seconds is None  # each Application asks for its interval
        # Pushes and watches queue on the queue the Runtime drains; one backoff per key.
        assert runtime.queue is controller.shared.queue
        assert runtime.backoff is controller.shared.backoff
        assert [w.kind for w in runtime.watches] == ["Application"]
        assert runtime.watches[0].cache is not None  # built by the controller, after the Lease

        key = AppKey("ns", "app")
        failed = Result(error=TransientError("x"), max_backoff=180.0)  # a 3 m interval
        assert [runtime.requeue(key, failed) for _ in range(9)] == [
            2.0,
            4.0,
            8.0,
            16.0,
            32.0,
            64.0,
            128.0,
            180.0,
            180.0,
        ]
        # A stalled sync (a render error) backs off the same way, not every 60 s.
        other = AppKey("ns", "other")
        assert runtime.requeue(other, Result(error=PermanentError("p"), max_backoff=180.0)) == 2.0
        # A deletion's retries: from 1 s, at most 30 s.
        deletion = Result(
            error=DeletionFailed("d"),
            max_backoff=Finalizer.RETRY.max_backoff,
            first_backoff=Finalizer.RETRY.first_backoff,
        )
        gone = AppKey("ns", "gone")
        assert [runtime.requeue(gone, deletion) for _ in range(7)] == [
            1.0,
            2.0,
            4.0,
            8.0,
            16.0,
            30.0,
            30.0,
        ]
    finally:
        controller.close()
