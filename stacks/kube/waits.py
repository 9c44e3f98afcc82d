"""Waits on the API server that several callers share, each with one behaviour.

    wait_crds_established(client, names, timeout)  until every CRD is Established, then
        forget discovery (so its kind can be used at once); WaitingError naming the CRDs
        that are not, after `timeout`: never a silent give-up
    wait_namespaces_gone(client, names, timeout, on_wait)  until no Namespace of `names`
        exists (deletion finishes asynchronously: its objects go first); the names still
        there after `timeout` are returned, since `platform down` reports rather than fails

Called by tests' fixtures and the reconciler's installer and applier
(stacks/reconciler/install.py; apply.py, which logs the give-up and lets the wave go
on), and `platform down`'s stages (bootstrap/stages/base.py, which reports a namespace
still there).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Protocol

from stacks.errors import WaitingError
from stacks.kube.objects import KubeObject, condition_of

CRD_API_VERSION = "apiextensions.k8s.io/v1"
POLL = 0.2


class WaitClient(Protocol):
    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> KubeObject | None: ...
    def forget_discovery(self) -> None: ...


def _established(crd: KubeObject | None) -> bool:
    cond = condition_of(crd or {}, "Established")
    return cond is not None and cond.get("status") == "True"


def wait_crds_established(
    client: WaitClient,
    names: Iterable[str],
    timeout: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Return once every CRD in `names` is Established; WaitingError after `timeout`."""
    left = list(dict.fromkeys(names))
    deadline = time.monotonic() + timeout
    while True:
        left = [
            n
            for n in left
            if not _established(client.get(CRD_API_VERSION, "CustomResourceDefinition", n))
        ]
        if not left:
            client.forget_discovery()
            return
        if time.monotonic() >= deadline:
            raise WaitingError(
                f"the CRD(s) {', '.join(left)} are not Established after {timeout:.0f}s",
                hint="check the CRD's status conditions (`kubectl describe crd NAME`): "
                "a name conflict (NamesAccepted False) never becomes Established",
                retry_after=5,
            )
        sleep(POLL)


def wait_namespaces_gone(
    client: WaitClient,
    names: Iterable[str],
    timeout: float = 90.0,
    on_wait: Callable[[list[str]], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[str]:
    """Wait until none of `names` exists; the ones still there after `timeout`."""
    left = sorted(set(names))
    deadline = time.monotonic() + timeout
    while True:
        left = [n for n in left if client.get("v1", "Namespace", n) is not None]
        if not left or time.monotonic() >= deadline:
            return left
        if on_wait is not None:
            on_wait(left)
        sleep(0.5)
