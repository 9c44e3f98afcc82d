"""webhooks.py: signatures, URL redaction, and delivery with retries (no network)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading

from stacks.errors import TransientError
from stacks.gitserver.webhooks import PushEvent, RetryPolicy, WebhookDispatcher, redact_url
from stacks.signing import SIGNATURE_HEADER, sign, verify

EVENT = PushEvent(repo="gitops", ref="refs/heads/main", before="0" * 40, after="a" * 40)
FAST = RetryPolicy(initial=0.01, maximum=0.02, give_up_after=5, timeout=1)


def test_body_and_signature_match_github_style() -> None:
    body = EVENT.body()
    assert json.loads(body) == {
        "repo": "gitops",
        "ref": "refs/heads/main",
        "before": "0" * 40,
        "after": "a" * 40,
    }
    expected = "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert sign(b"k", body) == expected
    assert verify(b"k", body, expected)
    assert not verify(b"other", body, expected)
    assert not verify(b"k", body + b" ", expected)
    assert not verify(b"k", body, None)


def test_redact_url() -> None:
    assert redact_url("http://u:p@host:8080/hook?token=x#f") == "http://host:8080/hook"
    assert redact_url("https://example.invalid/a") == "https://example.invalid/a"


class Recorder:
    """A fake poster: answers from a script of statuses or exceptions, then 200."""

    def __init__(self, script: list[int | Exception]) -> None:
        self.script = list(script)
        self.calls: list[tuple[str, bytes, dict[str, str]]] = []
        self.done = threading.Event()

    def __call__(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
        self.calls.append((url, body, headers))
        step = self.script.pop(0) if self.script else 200
        if isinstance(step, Exception):
            raise step
        if step < 300:
            self.done.set()
        return step


def test_retries_transient_failures_then_delivers() -> None:
    poster = Recorder([TransientError("refused"), 503, 429, 200])
    dispatcher = WebhookDispatcher(["http://a/hook"], b"secret", FAST, post=poster)
    dispatcher.start()
    dispatcher.publish(EVENT)
    assert poster.done.wait(5)
    dispatcher.stop(flush_timeout=1)
    assert len(poster.calls) == 4
    _, body, headers = poster.calls[-1]
    assert verify(b"secret", body, headers[SIGNATURE_HEADER])
    assert dispatcher.pending() == 0


def test_client_errors_are_not_retried() -> None:
    poster = Recorder([404])
    dispatcher = WebhookDispatcher(["http://a/hook"], b"s", FAST, post=poster)
    dispatcher.start()
    dispatcher.publish(EVENT)
    dispatcher.stop(flush_timeout=2)
    assert len(poster.calls) == 1


def test_each_url_gets_every_event_in_order() -> None:
    poster = Recorder([])
    dispatcher = WebhookDispatcher(["http://a/1", "http://b/2"], b"s", FAST, post=poster)
    dispatcher.start()
    events = [
        PushEvent("gitops", "refs/heads/main", str(i) * 40, str(i + 1) * 40) for i in range(5)
    ]
    for event in events:
        dispatcher.publish(event)
    dispatcher.stop(flush_timeout=5)
    for url in ("http://a/1", "http://b/2"):
        bodies = [body for called, body, _ in poster.calls if called == url]
        assert bodies == [event.body() for event in events]


def test_stop_gives_up_on_a_receiver_that_stays_down() -> None:
    poster = Recorder([TransientError("down")] * 10_000)
    dispatcher = WebhookDispatcher(["http://a/hook"], b"s", FAST, post=poster)
    dispatcher.start()
    dispatcher.publish(EVENT)
    dispatcher.stop(flush_timeout=0.2)  # returns although delivery never succeeded
    assert len(poster.calls) >= 2
