"""Leader election with a coordination.k8s.io/v1 Lease, so two replicas never both act.

client-go semantics: a candidate takes the Lease when it is free, or when the holder has
not renewed it for `lease_seconds` as observed on *our* monotonic clock (no trust in
clock sync between machines); the leader renews every `renew_seconds` and gives up
(`lost` is set) when it could not renew within `lease_seconds - renew margin`. A
graceful stop releases the Lease so a successor takes over at once.

Called by the reconciler's program (and usable by the other controllers).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from typing import Any, Protocol

from stacks.errors import PlatformError
from stacks.kube.errors import Conflict
from stacks.kube.objects import KubeObject

log = logging.getLogger(__name__)


class LeaseClient(Protocol):
    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> KubeObject | None: ...
    def create(self, obj: KubeObject) -> KubeObject: ...
    def replace(self, obj: KubeObject) -> KubeObject: ...


def _micro_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(
        self,
        client: LeaseClient,
        namespace: str,
        name: str,
        identity: str,
        lease_seconds: int = 15,
        renew_seconds: float = 5.0,
        retry_seconds: float = 2.0,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_seconds = lease_seconds
        self.renew_seconds = renew_seconds
        self.retry_seconds = retry_seconds
        self.leading = threading.Event()
        self.lost = threading.Event()
        self._observed: tuple[Any, ...] = ()
        self._observed_at = 0.0
        self._last_renew = 0.0

    def _try(self) -> bool:
        lease = self.client.get("coordination.k8s.io/v1", "Lease", self.name, self.namespace)
        now = _micro_now()
        if lease is None:
            try:
                self.client.create(
                    {
                        "apiVersion": "coordination.k8s.io/v1",
                        "kind": "Lease",
                        "metadata": {"name": self.name, "namespace": self.namespace},
                        "spec": {
                            "holderIdentity": self.identity,
                            "leaseDurationSeconds": self.lease_seconds,
                            "acquireTime": now,
                            "renewTime": now,
                            "leaseTransitions": 0,
                        },
                    }
                )
            except Conflict:
                return False
            return True
        spec = dict(lease.get("spec") or {})
        holder = spec.get("holderIdentity") or ""
        record = (holder, spec.get("renewTime"), spec.get("leaseDurationSeconds"))
        if record != self._observed:
            self._observed, self._observed_at = record, time.monotonic()
        duration = float(spec.get("leaseDurationSeconds") or self.lease_seconds)
        if holder and holder != self.identity and time.monotonic() - self._observed_at < duration:
            return False
        if holder != self.identity:
            spec["acquireTime"] = now
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        spec.update(
            {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": self.lease_seconds,
                "renewTime": now,
            }
        )
        lease["spec"] = spec
        try:
            self.client.replace(lease)
        except Conflict:
            return False
        return True

    def acquire(self, stop: threading.Event) -> bool:
        """Block until this process leads (True) or `stop` is set (False)."""
        announced = False
        while not stop.is_set():
            try:
                if self._try():
                    self._last_renew = time.monotonic()
                    self.leading.set()
                    log.info(
                        "became the leader (Lease '%s/%s', identity %s)",
                        self.namespace,
                        self.name,
                        self.identity,
                    )
                    return True
            except PlatformError as error:
                log.warning("failed to get Lease '%s/%s': %s", self.namespace, self.name, error)
            if not announced:
                log.info(
                    "waiting to become the leader (Lease '%s/%s' is held by %s)",
                    self.namespace,
                    self.name,
                    self._observed[0] if self._observed else "?",
                )
                announced = True
            stop.wait(self.retry_seconds)
        return False

    def renew_forever(self, stop: threading.Event) -> None:
        """Renew until `stop`; set `lost` when the Lease could not be kept."""
        while not stop.wait(self.renew_seconds):
            try:
                if self._try():
                    self._last_renew = time.monotonic()
                    continue
            except PlatformError as error:
                log.warning("failed to renew Lease '%s/%s': %s", self.namespace, self.name, error)
            if time.monotonic() - self._last_renew > self.lease_seconds - self.retry_seconds:
                log.error(
                    "lost the Lease '%s/%s'; stopping so that only one replica acts",
                    self.namespace,
                    self.name,
                )
                self.leading.clear()
                self.lost.set()
                return

    def release(self) -> None:
        if not self.leading.is_set():
            return
        self.leading.clear()
        try:
            lease = self.client.get("coordination.k8s.io/v1", "Lease", self.name, self.namespace)
            if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            lease["spec"].update(
                {"holderIdentity": "", "leaseDurationSeconds": 1, "renewTime": _micro_now()}
            )
            self.client.replace(lease)
            log.info("released the Lease '%s/%s'", self.namespace, self.name)
        except PlatformError as error:
            log.warning("failed to release Lease '%s/%s': %s", self.namespace, self.name, error)
