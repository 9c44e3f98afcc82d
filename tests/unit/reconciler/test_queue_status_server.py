"""The work queue's semantics, status conditions, the webhook route and the metrics."""

from __future__ import annotations

import threading
import time
from email.message import Message
from typing import Any

from stacks.kube.health import Health, HealthStatus
from stacks.kube.queue import WorkQueue
from stacks.program import metrics_text, registry_for
from stacks.reconciler.events import AsyncEvents
from stacks.reconciler.metrics import ReconcilerMetrics
from stacks.reconciler.server import Webhook
from stacks.reconciler.status import Report, SyncStatus, to_status
from stacks.signing import SIGNATURE_HEADER, sign, verify


def test_queue_dedupes_and_never_runs_a_key_twice_at_once() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    queue.add("a")
    queue.add("b")
    assert queue.depth() == 2
    first = queue.get(0.1)
    assert first == "a"
    queue.add("a")  # while processing: marked dirty, not handed out
    assert queue.get(0.1) == "b"
    assert queue.get(0.05) is None
    queue.done("a")
    assert queue.get(0.1) == "a"


def test_queue_delay_keeps_the_earliest() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a", delay=10)
    queue.add("a", delay=0.05)
    started = time.monotonic()
    assert queue.get(1.0) == "a"
    assert time.monotonic() - started < 0.5
    queue.done("a")
    assert queue.get(0.1) is None  # the later timer was superseded


def test_status_conditions_keep_transition_times() -> None:
    report = Report(2, {"repoURL": "r"}, {"namespace": "n"}, revision="abc")
    report.sync = SyncStatus.SYNCED
    report.health = Health(HealthStatus.HEALTHY, "ok")
    report.ready = ("True", "Succeeded", "applied")
    first = to_status(report, {})
    assert first["observedGeneration"] == 2 and first["sync"]["status"] == "Synced"
    ready = next(c for c in first["conditions"] if c["type"] == "Ready")
    old = {
        **first,
        "conditions": [
            {**c, "lastTransitionTime": "2000-01-01T00:00:00Z"} for c in first["conditions"]
        ],
    }
    again = to_status(report, old)
    assert (
        next(c for c in again["conditions"] if c["type"] == "Ready")["lastTransitionTime"]
        == "2000-01-01T00:00:00Z"
    )
    report.fail("FetchFailed", "down")
    failed = to_status(report, old)
    ready = next(c for c in failed["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and ready["lastTransitionTime"] != "2000-01-01T00:00:00Z"
    assert failed["inventory"] == [] and failed["lastAppliedRevision"] == ""


def test_status_carries_forward_what_this_run_did_not_learn() -> None:
    previous = {
        "inventory": [{"id": "n_a__ConfigMap", "v": "v1"}],
        "lastAppliedRevision": "old",
        "resources": [{"name": "a"}],
    }
    report = Report(1, {}, {})
    report.fail("FetchFailed", "git is down")
    status = to_status(report, previous)
    assert status["inventory"] == previous["inventory"]
    assert status["lastAppliedRevision"] == "old"
    assert status["resources"] == [{"name": "a"}]


def test_webhook_signature() -> None:
    body = b'{"repo":"gitops","ref":"refs/heads/main","before":"a","after":"b"}'
    header = sign(b"s3cret", body)
    assert header.startswith("sha256=") and len(header) == 7 + 64
    assert verify(b"s3cret", body, header)
    assert not verify(b"s3cret", body + b" ", header)
    assert not verify(b"other", body, header)
    assert not verify(b"", body, header)
    assert not verify(b"s3cret", body, None)


def test_events_are_posted_in_order_off_the_caller_and_dropped_beyond_a_bound() -> None:
    gate = threading.Event()
    posted: list[str] = []

    class Slow:
        def record(self, obj: Any, reason: str, message: str, warning: bool = False) -> None:
            gate.wait(10)
            posted.append(message)

    events = AsyncEvents(Slow())
    app = {"metadata": {"name": "a", "namespace": "n"}}
    started = time.monotonic()
    for i in range(AsyncEvents.MAX_PENDING + 5):  # the API server does not answer
        events.record(app, "Synced", str(i))
    assert time.monotonic() - started < 2.0  # the reconcile never waited for one
    gate.set()
    deadline = time.monotonic() + 10
    while len(posted) < AsyncEvents.MAX_PENDING and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    assert posted == [str(i) for i in range(AsyncEvents.MAX_PENDING)]  # in order; 5 dropped
    events.close()


def test_the_webhook_route_verifies_then_hands_the_push_to_the_leader() -> None:
    secret = b"s3cret"
    leading: list[bool] = [False]
    pushes: list[tuple[str, str, str]] = []

    def on_push(repo: str, ref: str, after: str) -> list[Any]:
        pushes.append((repo, ref, after))
        return ["ns/app"]

    webhook = Webhook(lambda: secret, lambda: on_push if leading[0] else None)
    body = b'{"repo": "gitops", "ref": "refs/heads/main", "after": "b"}'

    def headers(signature: str | None) -> Message:
        message = Message()
        if signature is not None:
            message[SIGNATURE_HEADER] = signature
        return message

    assert webhook(headers(None), body, "peer").code == 401
    assert webhook(headers(sign(b"other", body)), body, "peer").code == 401
    assert webhook(headers(sign(secret, b"[1]")), b"[1]", "peer").code == 400
    assert webhook(headers(sign(secret, body)), body, "peer").code == 503  # a follower
    leading[0] = True
    answer = webhook(headers(sign(secret, body)), body, "peer")
    assert (answer.code, answer.body) == (202, '{"queued": ["ns/app"]}\n')
    assert pushes == [("gitops", "refs/heads/main", "b")]
    assert Webhook(lambda: b"", lambda: on_push)(headers(sign(secret, body)), body, "p").code == 403


def test_reconciler_metrics_keep_their_names_on_the_shared_registry() -> None:
    metrics = ReconcilerMetrics()
    metrics.sync("success", 0.3)
    metrics.error("FetchFailed")
    metrics.counters["git_fetches_total"] = lambda: 4.0
    metrics.gauges["queue_depth"] = lambda: 2.0
    text = metrics_text(registry_for(None, [metrics])).decode()
    for line in (
        'platform_reconciler_syncs_total{result="success"} 1.0',
        'platform_reconciler_errors_total{reason="FetchFailed"} 1.0',
        'platform_reconciler_sync_duration_seconds_bucket{le="0.5"} 1.0',
        "platform_reconciler_git_fetches_total 4.0",
        "platform_reconciler_queue_depth 2.0",
        "process_resident_memory_bytes",
    ):
        assert line in text, line
