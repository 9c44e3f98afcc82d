"""The reconciler's push webhook: POST /webhook, a route of the program's `Endpoints`.

The git server's push notification is a JSON body
`{"repo": ..., "ref": "refs/heads/main", "before": sha, "after": sha}` signed with
HMAC-SHA256 over the exact body bytes, sent as `X-Platform-Signature: sha256=<hex>`.
A bad or missing signature is refused (401) before the body is parsed; without a
configured secret every webhook is refused (403); the secret is read per request, so a
Secret mounted (or rotated) after start takes effect without a restart. A replica that
is not the leader answers 503 so the sender knows nothing was queued (the interval
still catches up).

Anyone who can reach the port can send anything: the request is bounded before this
handler sees it (stacks/program.py: a deadline for the whole request, at most
MAX_CONNECTIONS at once, a body of at most MAX_BODY, 400 for malformed headers). A
replayed signed payload only queues a fetch: the reconciler resolves the branch itself
and never applies the `after` of a payload, so an old push cannot roll anything back.

/healthz, /readyz and /metrics are the shared ones of stacks/program.py. Called by
program.py; the push handler is the controller's `on_push`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from email.message import Message
from typing import Any

from stacks.program import MAX_BODY, MAX_CONNECTIONS, REQUEST_DEADLINE, Answer
from stacks.signing import SIGNATURE_HEADER, verify

__all__ = ["MAX_BODY", "MAX_CONNECTIONS", "REQUEST_DEADLINE", "PushHandler", "Webhook"]

log = logging.getLogger(__name__)

PushHandler = Callable[[str, str, str], list[Any]]


class Webhook:
    """The /webhook route: verify, parse, hand the push to the leader's `on_push`."""

    def __init__(self, secret: Callable[[], bytes], push: Callable[[], PushHandler | None]) -> None:
        self.secret = secret
        self.push = push

    def __call__(self, headers: Message, body: bytes, peer: str) -> Answer:
        key = self.secret()
        if not key:
            return Answer(403, "webhooks are disabled: the reconciler has no webhook secret\n")
        if not verify(key, body, headers.get(SIGNATURE_HEADER)):
            log.warning("refused a webhook from %s: bad or missing signature", peer)
            return Answer(401, f"bad or missing {SIGNATURE_HEADER}\n")
        try:
            event = json.loads(body)
            repo, ref, after = (
                str(event["repo"]),
                str(event.get("ref", "")),
                str(event.get("after", "")),
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return Answer(400, 'expected {"repo", "ref", "before", "after"}\n')
        handler = self.push()
        if handler is None:
            return Answer(503, "not the leader\n")
        queued = handler(repo, ref, after)
        return Answer(
            202, json.dumps({"queued": [str(k) for k in queued]}) + "\n", "application/json"
        )
