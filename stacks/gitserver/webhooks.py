"""Push webhooks: signed JSON POSTs, delivered in the background with retries.

`app.py` hands every accepted ref update to `WebhookDispatcher.publish()`, which only
queues it, so a push response never waits for a receiver. One worker thread per URL
delivers its queue in order; a receiver that is down gets the event when it comes back
(tenacity: exponential backoff, capped, given up after `give_up_after` seconds).

The body is `{"repo", "ref", "before", "after"}`; the header
`X-Platform-Signature: sha256=<hex>` is the HMAC-SHA256 of the exact body bytes with the
shared secret, like GitHub's `X-Hub-Signature-256`; the rule lives in `stacks.signing`,
whose `verify()` receivers use (the reconciler's, stacks/reconciler/server.py). Log lines name URLs without userinfo or query string.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_delay,
    stop_when_event_set,
    wait_exponential,
)

from stacks.errors import PermanentError, TransientError
from stacks.signing import SIGNATURE_HEADER, sign

log = logging.getLogger("platform.gitserver.webhooks")

EVENT_HEADER = "X-Platform-Event"
DELIVERY_HEADER = "X-Platform-Delivery"
QUEUE_LIMIT = 10_000


@dataclass(frozen=True)
class PushEvent:
    """One accepted ref update."""

    repo: str
    ref: str
    before: str
    after: str

    def body(self) -> bytes:
        payload = {"repo": self.repo, "ref": self.ref, "before": self.before, "after": self.after}
        return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def redact_url(url: str) -> str:
    """`scheme://host[:port]/path` only: no userinfo, query or fragment in logs."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


Poster = Callable[[str, bytes, dict[str, str], float], int]


def http_post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """POST `body`; return the status; raise TransientError for a retryable failure."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 - URLs come from the operator's flags
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            response.read()
            status: int = response.status
            return status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise TransientError(f"cannot reach {redact_url(url)}: {reason}") from None


@dataclass(frozen=True)
class RetryPolicy:
    initial: float = 0.2
    maximum: float = 10.0
    give_up_after: float = 900.0
    timeout: float = 5.0


class WebhookDispatcher:
    """Queues push events and delivers them to every URL from background threads."""

    def __init__(
        self,
        urls: Sequence[str],
        secret: bytes,
        policy: RetryPolicy | None = None,
        post: Poster = http_post,
    ) -> None:
        self.urls = list(urls)
        self._secret = secret
        self._policy = policy or RetryPolicy()
        self._post = post
        self._stop = threading.Event()
        self._queues: dict[str, queue.Queue[PushEvent]] = {
            url: queue.Queue(QUEUE_LIMIT) for url in self.urls
        }
        self._threads: list[threading.Thread] = []
        self._outstanding = 0  # queued or being delivered, over all URLs
        self._settled = threading.Condition()

    def start(self) -> None:
        for index, url in enumerate(self.urls):
            thread = threading.Thread(
                target=self._work, args=(url,), name=f"webhook-{index}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def publish(self, event: PushEvent) -> None:
        """Queue `event` for every URL; never blocks (drops the oldest when full)."""
        for url, pending in self._queues.items():
            with self._settled:
                self._outstanding += 1
            while True:
                try:
                    pending.put_nowait(event)
                    break
                except queue.Full:
                    try:
                        dropped = pending.get_nowait()
                    except queue.Empty:
                        continue
                    self._done()
                    log.warning(
                        "failed to queue webhook for %s: queue full, dropped '%s' %s",
                        redact_url(url),
                        dropped.repo,
                        dropped.ref,
                    )

    def pending(self) -> int:
        """Deliveries queued or in progress (one per event and URL)."""
        with self._settled:
            return self._outstanding

    def _done(self) -> None:
        with self._settled:
            self._outstanding -= 1
            self._settled.notify_all()

    def stop(self, flush_timeout: float = 5.0) -> None:
        """Give queued deliveries up to `flush_timeout` seconds, then stop the workers."""
        with self._settled:
            self._settled.wait_for(lambda: self._outstanding == 0, timeout=flush_timeout)
        self._stop.set()
        deadline = time.monotonic() + 2.0
        for thread in self._threads:
            thread.join(timeout=max(0.5, deadline - time.monotonic()))
        left = sum(q.qsize() for q in self._queues.values())
        if left:
            log.warning("stopped with %d webhook deliveries undelivered", left)

    def _work(self, url: str) -> None:
        pending = self._queues[url]
        while not self._stop.is_set():
            try:
                event = pending.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                self._deliver(url, event)
            except Exception as error:  # logged; the worker must live on
                log.error(
                    "failed to deliver webhook for '%s' %s to %s: %s",
                    event.repo,
                    event.ref,
                    redact_url(url),
                    error,
                )
            finally:
                self._done()

    def _deliver(self, url: str, event: PushEvent) -> None:
        body = event.body()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "platform-gitserver",
            EVENT_HEADER: "push",
            DELIVERY_HEADER: uuid.uuid4().hex,
            SIGNATURE_HEADER: sign(self._secret, body),
        }
        policy = self._policy
        started = time.monotonic()
        attempts = 0

        def attempt() -> int:
            nonlocal attempts
            attempts += 1
            status = self._post(url, body, headers, policy.timeout)
            if status >= 500 or status in (408, 429):
                raise TransientError(f"{redact_url(url)} answered {status}")
            if status >= 300:
                raise PermanentError(f"{redact_url(url)} answered {status}")
            return status

        retrying = Retrying(
            retry=retry_if_exception_type(TransientError),
            wait=wait_exponential(
                multiplier=policy.initial, min=policy.initial, max=policy.maximum
            ),
            stop=stop_after_delay(policy.give_up_after) | stop_when_event_set(self._stop),
            sleep=self._sleep,
            reraise=True,
            before_sleep=lambda state: log.info(
                "failed to deliver webhook for '%s' %s to %s (attempt %d): %s; retrying",
                event.repo,
                event.ref,
                redact_url(url),
                state.attempt_number,
                state.outcome.exception() if state.outcome else "unknown",
            ),
        )
        retrying(attempt)
        log.info(
            "delivered webhook for '%s' %s %s..%s to %s in %.0f ms (attempt %d)",
            event.repo,
            event.ref,
            event.before[:7],
            event.after[:7],
            redact_url(url),
            (time.monotonic() - started) * 1000,
            attempts,
        )

    def _sleep(self, seconds: float) -> None:
        self._stop.wait(seconds)
