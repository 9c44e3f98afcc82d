"""The DNS stub controller: sources -> the two owned keys of `kube-system/coredns-custom`.

Every change of an Ingress, Service, DNSRecord or of `coredns-custom` queues the one key
"sync" (the work queue collapses bursts). Its reconcile has the controller shape of
stacks/kube/controller.py (`ObjectReconciler`): the steps `throttle` (at most one sync
every MIN_SYNC_INTERVAL), `caches` (every source has answered) and `sync`; `finish`
writes nothing, since the ConfigMap is its whole output. A sync reads every source
from the runtime's informer caches, which list and watch them, so a sync costs no LIST;
if ANY source is not listed, or its list/watch is failing or forbidden now, it
raises and writes nothing, so the hosts file keeps its last good content
(external-dns#1238), and the runtime retries with its backoff (and at once when the
API server comes back). Otherwise it merges its entries into `platform.hosts`
(foreign lines kept verbatim, see `stacks.dns.hosts`) and writes the two keys with a
merge patch carrying the resourceVersion it read (a concurrent writer causes a conflict
and a retry, never a lost update). Other keys of the ConfigMap are never sent.

Created by `stacks.dns.program`.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from stacks.dns import hosts, sources
from stacks.dns.release import CREATED_BY
from stacks.errors import PlatformError, TransientError
from stacks.kube.cache import KindCache
from stacks.kube.client import KubeClient, WatchEvent
from stacks.kube.controller import ObjectReconciler, QueueKey, Result, Runtime, Step, Stop, Watch
from stacks.kube.errors import Conflict
from stacks.kube.events import EventRecorder

log = logging.getLogger(__name__)

CONFIGMAP_NAMESPACE = "kube-system"
CONFIGMAP_NAME = "coredns-custom"
SYNC: QueueKey = "sync"
MIN_SYNC_INTERVAL = 0.25  # seconds between the starts of two syncs
INGRESS_API = "networking.k8s.io/v1"


@dataclass(frozen=True)
class Options:
    domain: str = "localdev.me"
    default_target: str = ""
    owner_id: str = "platform-dns"
    configmap_namespace: str = CONFIGMAP_NAMESPACE
    configmap_name: str = CONFIGMAP_NAME
    hosts_ttl: int = 30


@dataclass(frozen=True)
class SyncResult:
    added: tuple[str, ...]
    removed: tuple[str, ...]
    skipped: tuple[str, ...]
    written: bool


@dataclass
class _Pass:
    """The subject of one reconcile of the one key (the sources live in the caches)."""

    result: SyncResult | None = None


class DnsController(ObjectReconciler[_Pass]):
    def __init__(
        self, client: KubeClient, options: Options, events: EventRecorder | None = None
    ) -> None:
        self.client = client
        self.options = options
        self.events = events
        self.syncs = 0
        self.writes = 0
        self.last_error = ""
        self._last_sync = 0.0

        def to_sync(event: WatchEvent) -> list[QueueKey]:
            return [SYNC]

        def cm_to_sync(event: WatchEvent) -> list[QueueKey]:
            name = (event.object.get("metadata") or {}).get("name")
            return [SYNC] if name == options.configmap_name else []

        self.runtime = Runtime(
            name="dns",
            client=client,
            reconcile=self.reconcile,
            workers=1,
            watches=[
                Watch(INGRESS_API, "Ingress", to_sync),
                Watch("v1", "Service", to_sync),
                Watch(sources.DNS_API_VERSION, "DNSRecord", to_sync),
                Watch("v1", "ConfigMap", cm_to_sync, namespace=options.configmap_namespace),
            ],
        )

    def load(self, key: QueueKey) -> _Pass:
        return _Pass()

    def steps(self, subject: _Pass) -> Sequence[Step[_Pass]]:
        return [("throttle", self._throttle), ("caches", self._caches), ("sync", self._sync)]

    def _throttle(self, subject: _Pass) -> Stop | None:
        # A sync reads memory, not the API, so a burst of events (500 Ingresses applied
        # at once) would rewrite the ConfigMap once per event; like external-dns's
        # --min-event-sync-interval, syncs start at most every MIN_SYNC_INTERVAL, and a
        # lone change still syncs at once.
        wait = self._last_sync + MIN_SYNC_INTERVAL - time.monotonic()
        return Stop(wait) if wait > 0 else None

    def _caches(self, subject: _Pass) -> Stop | None:
        starting = [
            i
            for i in self.runtime.informers.values()
            if not i.listed.is_set() and not (i.denied or i.failing)
        ]
        if starting:
            return Stop(1.0)  # a cache has not answered yet: look again soon, no warning
        return None

    def _sync(self, subject: _Pass) -> None:
        self._last_sync = time.monotonic()
        subject.result = self.sync()

    def finish(self, subject: _Pass, result: Result) -> Result:
        return result  # the ConfigMap is the output (sync wrote it); no status of its own

    def _source(self, kind: str) -> KindCache:
        """A source's cache; TransientError unless it holds the whole, current picture."""
        informer = self.runtime.informers.get(kind)
        if informer is None or not informer.listed.is_set():
            why = (informer.denied or informer.failing) if informer is not None else ""
            raise TransientError(f"{kind} not listed yet" + (f": {why}" if why else ""))
        if informer.denied or informer.failing:
            raise TransientError(f"{kind}: {informer.denied or informer.failing}")
        return informer

    def list_endpoints(self) -> list[sources.Endpoint]:
        """Every endpoint from every source's cache; raises if any source is not listed
        or cannot be watched now (no partial set)."""
        default = self.options.default_target
        endpoints: list[sources.Endpoint] = []
        try:
            ingresses, services, records = (
                self._source(kind) for kind in ("Ingress", "Service", "DNSRecord")
            )
        except PlatformError as error:
            self.last_error = str(error)
            log.warning("failed to list DNS sources, keeping the hosts file as it is: %s", error)
            raise TransientError(f"failed to list DNS sources: {error}") from error
        for obj in ingresses.items():
            endpoints.extend(sources.ingress_endpoints(obj, default))
        for obj in services.items():
            endpoints.extend(sources.service_endpoints(obj, default))
        for obj in records.items():
            endpoints.extend(sources.record_endpoints(obj))
        return endpoints

    def sync(self) -> SyncResult:
        self.syncs += 1
        endpoints = self.list_endpoints()
        entries, skipped = hosts.desired_entries(
            endpoints, self.options.owner_id, self.options.domain
        )
        for note in skipped:
            log.debug("skipped %s", note)
        server = hosts.render_server_block(self.options.domain, ttl=self.options.hosts_ttl)
        live = self.client.get(
            "v1", "ConfigMap", self.options.configmap_name, self.options.configmap_namespace
        )
        data: dict[str, Any] = (live or {}).get("data") or {}
        old_hosts = str(data.get(hosts.HOSTS_KEY) or "")
        new_hosts = hosts.merge(old_hosts, entries, self.options.owner_id)
        before = set(hosts.owned_lines(old_hosts, self.options.owner_id))
        after = set(hosts.owned_lines(new_hosts, self.options.owner_id))
        result = SyncResult(
            tuple(sorted(after - before)),
            tuple(sorted(before - after)),
            tuple(skipped),
            written=False,
        )
        if data.get(hosts.SERVER_KEY) == server and old_hosts == new_hosts:
            self.last_error = ""
            return result
        where = f"ConfigMap '{self.options.configmap_namespace}/{self.options.configmap_name}'"
        try:
            if live is None:
                self.client.create(
                    {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "metadata": {
                            "name": self.options.configmap_name,
                            "namespace": self.options.configmap_namespace,
                            "labels": {"app.kubernetes.io/part-of": "platform"},
                            # `platform down` deletes it again only if the stub made it.
                            "annotations": {CREATED_BY: self.options.owner_id},
                        },
                        "data": {hosts.SERVER_KEY: server, hosts.HOSTS_KEY: new_hosts},
                    }
                )
            else:
                self.client.merge_patch(
                    "v1",
                    "ConfigMap",
                    self.options.configmap_name,
                    {
                        "metadata": {"resourceVersion": live["metadata"]["resourceVersion"]},
                        "data": {hosts.SERVER_KEY: server, hosts.HOSTS_KEY: new_hosts},
                    },
                    self.options.configmap_namespace,
                )
        except Conflict as error:
            raise TransientError(f"{where} changed while updating it; retrying") from error
        except PlatformError as error:
            log.warning("failed to update %s: %s", where, error)
            raise
        self.writes += 1
        self.last_error = ""
        log.info(
            "updated %s: %d entries (+%d -%d) at %s",
            where,
            len(after),
            len(result.added),
            len(result.removed),
            dt.datetime.now(dt.UTC).strftime("%H:%M:%S"),
        )
        return SyncResult(result.added, result.removed, result.skipped, written=True)
