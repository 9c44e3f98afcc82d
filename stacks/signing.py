"""Webhook signatures: HMAC-SHA256 of the exact body bytes, `sha256=<hex>`.

The one home of the rule both ends share, like GitHub's `X-Hub-Signature-256`:
    sign(secret, body)            the header value a sender puts on `body`
    verify(secret, body, header)  constant-time check; False without a secret or header

Called by the git server's webhook sender (stacks.gitserver.webhooks), the reconciler's
receiver (stacks/reconciler/server.py) and the tests.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Platform-Signature"


def sign(secret: bytes, body: bytes) -> str:
    """The signature header value for `body`: `sha256=<hex hmac>`."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, header: str | None) -> bool:
    """True when `header` is the signature of `body` with `secret` (constant time)."""
    if not secret or not header:
        return False
    # Headers arrive decoded as latin-1, so a hostile one may hold any character below
    # 256; compare_digest refuses non-ASCII str, so compare bytes.
    given = header.strip().encode("latin-1", errors="replace")
    return hmac.compare_digest(sign(secret, body).encode(), given)
