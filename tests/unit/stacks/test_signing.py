"""stacks.signing: the webhook signature rule both ends share."""

from __future__ import annotations

import hashlib
import hmac

from stacks.signing import sign, verify


def test_sign_and_verify() -> None:
    body = b'{"ref":"refs/heads/main"}'
    header = sign(b"k", body)
    assert header == "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert verify(b"k", body, header) and verify(b"k", body, f" {header} ")
    assert not verify(b"other", body, header)
    assert not verify(b"", body, sign(b"", body))  # no secret configured: refuse all
    assert not verify(b"k", body, None)
    assert not verify(b"k", body, "sha256=\xff")  # latin-1 garbage is refused, not raised
