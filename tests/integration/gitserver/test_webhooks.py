"""Push webhooks from the real git server: signed, retried, never delaying the push."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from stacks.signing import SIGNATURE_HEADER, verify
from tests.support.gitserver import GitServer, WebhookReceiver

pytestmark = pytest.mark.integration


def commit(server: GitServer, work: Path, name: str) -> str:
    (work / name).write_text(f"{name}\n")
    server.git("add", name, cwd=work)
    server.git("commit", "-q", "-m", name, cwd=work)
    return server.git("rev-parse", "HEAD", cwd=work).stdout.strip()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    hooks = WebhookReceiver()
    hooks.start()
    yield hooks
    hooks.stop()


def test_push_delivers_a_signed_webhook(
    git_server_factory: Callable[..., GitServer], receiver: WebhookReceiver, tmp_path: Path
) -> None:
    server = git_server_factory(webhook_urls=[receiver.url])
    url = server.create_repo("gitops")
    work = tmp_path / "work"
    server.git("init", "-q", "-b", "main", str(work))
    first = commit(server, work, "a.txt")
    server.git("push", url, "main", cwd=work)
    second = commit(server, work, "b.txt")
    server.git("push", url, "main", cwd=work)
    server.git("push", url, "main:refs/heads/feature", cwd=work)

    deliveries = receiver.wait(3)
    payloads = [d.json() for d in deliveries]
    assert payloads == [
        {"repo": "gitops", "ref": "refs/heads/main", "before": "0" * 40, "after": first},
        {"repo": "gitops", "ref": "refs/heads/main", "before": first, "after": second},
        {"repo": "gitops", "ref": "refs/heads/feature", "before": "0" * 40, "after": second},
    ]
    for delivery in deliveries:
        assert verify(server.webhook_secret, delivery.body, delivery.headers[SIGNATURE_HEADER])
        assert not verify(b"other secret", delivery.body, delivery.headers[SIGNATURE_HEADER])
        assert delivery.headers["X-Platform-Event"] == "push"
    assert server.webhook_secret.decode() not in server.log_text()

    # a rejected push sends nothing
    server.git("reset", "-q", "--hard", first, cwd=work)
    commit(server, work, "c.txt")
    assert server.git("push", url, "main", cwd=work, check=False).returncode != 0
    time.sleep(1)
    assert len(receiver.deliveries) == 3


def test_receiver_down_gets_it_later_and_the_push_is_not_delayed(
    git_server_factory: Callable[..., GitServer], tmp_path: Path
) -> None:
    receiver = WebhookReceiver()  # not started: connections are refused
    server = git_server_factory(webhook_urls=[receiver.url])
    url = server.create_repo("gitops")
    work = tmp_path / "work"
    server.git("init", "-q", "-b", "main", str(work))
    head = commit(server, work, "a.txt")

    # a push while the receiver is up, for a baseline
    baseline = WebhookReceiver()
    baseline_server = git_server_factory(webhook_urls=[baseline.url])
    baseline.start()
    try:
        baseline_url = baseline_server.create_repo("gitops")
        started = time.monotonic()
        baseline_server.git("push", baseline_url, "main", cwd=work)
        normal = time.monotonic() - started
        baseline.wait(1)
    finally:
        baseline.stop()

    started = time.monotonic()
    server.git("push", url, "main", cwd=work)
    pushed = time.monotonic() - started
    assert pushed < normal + 1.0, (
        f"push took {pushed:.2f}s with the receiver down, {normal:.2f}s up"
    )

    time.sleep(2.0)  # several failed attempts with backoff
    assert "failed to deliver webhook" in server.log_text()
    receiver.start()
    try:
        delivery = receiver.wait(1, timeout=30)[0]
    finally:
        receiver.stop()
    assert delivery.json()["after"] == head
    assert verify(server.webhook_secret, delivery.body, delivery.headers[SIGNATURE_HEADER])
    assert len(receiver.deliveries) == 1
