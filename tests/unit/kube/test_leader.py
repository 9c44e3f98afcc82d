"""Leader election over a Lease, with an in-memory Lease store that enforces
resourceVersion like the API server does."""

from __future__ import annotations

import copy
import threading
import time

from stacks.kube.errors import Conflict
from stacks.kube.leader import LeaderElector
from stacks.kube.objects import KubeObject


class FakeLeases:
    def __init__(self) -> None:
        self.lease: KubeObject | None = None
        self.version = 0

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> KubeObject | None:
        return copy.deepcopy(self.lease)

    def create(self, obj: KubeObject) -> KubeObject:
        if self.lease is not None:
            raise Conflict("exists", 409)
        self.version += 1
        self.lease = copy.deepcopy(obj)
        self.lease["metadata"]["resourceVersion"] = str(self.version)
        return copy.deepcopy(self.lease)

    def replace(self, obj: KubeObject) -> KubeObject:
        assert self.lease is not None
        if obj["metadata"].get("resourceVersion") != self.lease["metadata"]["resourceVersion"]:
            raise Conflict("stale", 409)
        self.version += 1
        self.lease = copy.deepcopy(obj)
        self.lease["metadata"]["resourceVersion"] = str(self.version)
        return copy.deepcopy(self.lease)


def test_one_leader_then_handover_on_release() -> None:
    store = FakeLeases()
    stop = threading.Event()
    a = LeaderElector(store, "ns", "lease", "a", lease_seconds=5, retry_seconds=0.05)
    b = LeaderElector(store, "ns", "lease", "b", lease_seconds=5, retry_seconds=0.05)
    assert a.acquire(stop)
    waiter = threading.Thread(target=b.acquire, args=(stop,))
    waiter.start()
    time.sleep(0.3)
    assert not b.leading.is_set()  # a holds a fresh lease
    a.release()
    waiter.join(2)
    assert b.leading.is_set()
    assert store.lease is not None and store.lease["spec"]["holderIdentity"] == "b"
    assert store.lease["spec"]["leaseTransitions"] == 1
    stop.set()


def test_an_expired_lease_is_taken_over() -> None:
    store = FakeLeases()
    stop = threading.Event()
    a = LeaderElector(store, "ns", "lease", "a", lease_seconds=1, retry_seconds=0.05)
    b = LeaderElector(store, "ns", "lease", "b", lease_seconds=1, retry_seconds=0.05)
    assert a.acquire(stop)  # and then a never renews (crashed)
    started = time.monotonic()
    assert b.acquire(stop)
    assert time.monotonic() - started >= 0.9  # only after the lease ran out on b's clock
    assert store.lease is not None and store.lease["spec"]["holderIdentity"] == "b"


def test_a_leader_that_cannot_renew_reports_lost() -> None:
    store = FakeLeases()
    stop = threading.Event()
    a = LeaderElector(
        store, "ns", "lease", "a", lease_seconds=1, renew_seconds=0.1, retry_seconds=0.2
    )
    assert a.acquire(stop)
    assert store.lease is not None
    store.lease["spec"]["holderIdentity"] = "intruder"  # someone else took it
    store.lease["spec"]["renewTime"] = "later"
    thread = threading.Thread(target=a.renew_forever, args=(stop,))
    thread.start()
    assert a.lost.wait(3)
    stop.set()
    thread.join(2)
