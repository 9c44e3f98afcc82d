"""The controller shape (stacks/kube/controller.py), pure: steps in order, the first error
ends them, `finish` always runs once, and `Runtime.requeue` maps each outcome."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import cast

import pytest

from stacks.errors import PermanentError, TransientError, WaitingError
from stacks.kube.cache import KindCache
from stacks.kube.client import KubeClient
from stacks.kube.controller import (
    PERMANENT_RETRY,
    ErrorKind,
    ObjectReconciler,
    QueueKey,
    Result,
    Runtime,
    Step,
    Stop,
)


@dataclass
class Subject:
    ran: list[str] = field(default_factory=list)


class Demo(ObjectReconciler[Subject]):
    def __init__(self, fail_at: str = "", error: Exception | None = None) -> None:
        self.fail_at, self.error = fail_at, error
        self.finished: list[Result] = []

    def load(self, key: QueueKey) -> Subject | None:
        return None if key == "gone" else Subject()

    def steps(self, subject: Subject) -> Sequence[Step[Subject]]:
        return [(name, self._step(name)) for name in ("one", "two", "three")]

    def _step(self, name: str):  # type: ignore[no-untyped-def]
        def step(subject: Subject) -> float | Stop | None:
            subject.ran.append(name)
            if name == self.fail_at:
                if self.error is None:
                    return Stop(7.0)
                raise self.error
            return {"one": 30.0, "two": 10.0}.get(name)

        return step

    def finish(self, subject: Subject, result: Result) -> Result:
        self.finished.append(result)
        return result


def test_steps_run_in_order_and_the_soonest_requeue_wins() -> None:
    demo = Demo()
    result = demo.reconcile("k")
    assert result.after == 10.0 and result.error is None and len(demo.finished) == 1
    assert demo.reconcile("gone") == Result() and len(demo.finished) == 1


def test_the_first_error_ends_the_steps_and_finish_still_runs() -> None:
    demo = Demo(fail_at="two", error=WaitingError("later", retry_after=3))
    result = demo.reconcile("k")
    assert result.step == "two" and result.kind is ErrorKind.WAITING
    assert demo.finished == [result]
    stopped = Demo(fail_at="two").reconcile("k")
    assert (stopped.stopped, stopped.after, stopped.error) == ("two", 7.0, None)


def test_requeue_in_one_place() -> None:
    runtime = Runtime("demo", cast(KubeClient, None), lambda key: None, [], max_backoff=4)
    assert runtime.requeue("k", Result(after=5)) == 5
    assert runtime.requeue("k", Result(error=WaitingError("w", retry_after=2))) == 2
    assert runtime.requeue("k", Result(error=PermanentError("p"))) == PERMANENT_RETRY
    assert runtime.requeue("k", Result(error=PermanentError("p"), retry_stalled=False)) is None
    delays = [runtime.requeue("k", Result(error=TransientError("t"))) for _ in range(4)]
    assert delays == [1, 2, 4, 4]
    assert runtime.requeue("k", Result(error=ValueError("bug"), max_backoff=1)) == 1
    runtime.requeue("k", Result())  # success forgets the backoff
    assert runtime.requeue("k", Result(error=TransientError("t"))) == 1
    assert runtime.errors == 8  # every failure but the waiting one


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (WaitingError("w"), ErrorKind.WAITING),
        (PermanentError("p"), ErrorKind.STALLED),
        (TransientError("t"), ErrorKind.TRANSIENT),
        (KeyError("bug"), ErrorKind.TRANSIENT),
    ],
)
def test_error_kinds(error: Exception, kind: ErrorKind) -> None:
    assert Result(error=error).kind is kind


def test_a_comeback_resets_every_backoff_but_a_first_list_does_not() -> None:
    runtime = Runtime("demo", cast(KubeClient, None), lambda key: None, [], max_backoff=60)
    for _ in range(5):
        runtime.requeue("k", Result(error=TransientError("t")))
    cache = cast(KindCache, SimpleNamespace(kind="Demo"))
    runtime.informers["Demo"] = cache
    runtime.recovered(cache)  # its first list, after a failed start: seeding handles it
    assert runtime.backoff.attempts("k") == 5 and runtime.recoveries == 0
    runtime._seeded.append(cache)
    runtime.recovered(cache)  # listed again after an outage: a dependency came back
    assert runtime.backoff.attempts("k") == 0 and runtime.recoveries == 1
    for _ in range(3):
        runtime.requeue("k", Result(error=TransientError("t")))
    # A cache the runtime does not watch (the reconciler's managed kinds) has no first
    # list to leave to seeding: its comeback counts at once.
    runtime.recovered(cast(KindCache, SimpleNamespace(kind="ConfigMap")))
    assert runtime.backoff.attempts("k") == 0 and runtime.recoveries == 2


def test_the_reconciler_knobs_of_the_requeue() -> None:
    runtime = Runtime(
        "demo",
        cast(KubeClient, None),
        lambda key: None,
        [],
        max_backoff=float("inf"),
        first_backoff=2.0,
        stalled_backoff=True,
    )
    # The first retry after 2 s, doubling, capped by the result (an interval).
    delays = [
        runtime.requeue("k", Result(error=TransientError("t"), max_backoff=10)) for _ in range(4)
    ]
    assert delays == [2.0, 4.0, 8.0, 10.0]
    # Stalled objects back off too (no fixed 60 s), unless they can never heal.
    assert runtime.requeue("s", Result(error=PermanentError("p"))) == 2.0
    assert runtime.requeue("s", Result(error=PermanentError("p"), retry_stalled=False)) is None
    # A failure's own retry time replaces the backoff's delay, and still counts.
    assert runtime.requeue("r", Result(error=TransientError("t"), after=30.0)) == 30.0
    assert runtime.backoff.attempts("r") == 1
    # A failure's own first delay (a deletion's 1 s).
    assert runtime.requeue("d", Result(error=TransientError("t"), first_backoff=1.0)) == 1.0
    # Success forgets the count.
    assert runtime.requeue("k", Result(after=5.0)) == 5.0 and runtime.backoff.attempts("k") == 0
