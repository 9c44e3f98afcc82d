"""The ExternalSecret reconciler: Vault -> Kubernetes Secret, with ESO's semantics.

One `stacks.kube.controller.Runtime` watches ExternalSecrets, SecretStores and
ClusterSecretStores; keys are `(kind, namespace, name)`. An ExternalSecret is reconciled
in the controller shape of stacks/kube/controller.py (`ObjectReconciler`), with the
named steps:

    stores  wait until the stores are listed ("store not found" would be a lie)
    parse   the spec (bad spec: not Ready, nothing written, no retry until it changes)
    due     is a sync due? (spec/labels/annotations changed -- which includes the
            force-sync annotation --, refreshInterval elapsed, or the runtime's backoff
            of a failure over); if not, stop without touching status
    sync    read every remote key once (any provider failure keeps the last good
            Secret); resolve (pure): every key resolved, or not Ready and nothing
            changes; write per creationPolicy (Owner / Orphan / Merge / None), refusing
            a Secret that something else owns, and only when the live Secret differs
    finish  (always, once) status (Ready: SecretSynced / SecretSyncedError /
            SecretDeleted, refreshTime, syncedResourceVersion), Events on writes and new
            failures; a failure goes back to the runtime, whose per-key backoff (capped
            at 30 s and at the refresh interval) decides the retry.

A SecretStore or ClusterSecretStore is reconciled in the same shape
(`stores.StoreReconciler`: validate, then Ready in `finish`).

There is deliberately no watch on Secrets (least privilege: get, not list/watch, on
Secrets); a Secret changed by hand is put back at the next refresh.

Called by stacks.secrets.program.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from stacks.errors import PermanentError, PlatformError, TransientError
from stacks.kube.client import KubeClient, WatchEvent
from stacks.kube.controller import (
    ObjectReconciler,
    QueueKey,
    Result,
    Runtime,
    Step,
    Stop,
    Watch,
    kind_key,
    split_key,
)
from stacks.kube.events import EventRecorder
from stacks.kube.objects import KubeObject
from stacks.secrets.api import (
    API_VERSION,
    CLUSTER_SECRET_STORE,
    DATA_HASH_ANNOTATION,
    EXTERNAL_SECRET,
    FIELD_MANAGER,
    MANAGED_LABEL,
    OWNER_ANNOTATION,
    SECRET_STORE,
    CreationPolicy,
    DeletionPolicy,
    ExternalSecretSpec,
    Reason,
    parse_external_secret,
)
from stacks.secrets.resolve import DesiredSecret, data_hash, live_matches, resolve
from stacks.secrets.status import (
    parse_timestamp,
    ready_condition,
    set_condition,
    timestamp,
    write_status,
)
from stacks.secrets.stores import StoreReconciler, Stores, store_label

if TYPE_CHECKING:
    from stacks.kube.leader import LeaderElector

log = logging.getLogger(__name__)

MAX_FAILURE_DELAY = 30.0  # the runtime's backoff cap for this controller
DRIFT_CHECK_SECONDS = 30.0  # re-read the live Secret at least this often
REFRESH_TIME_MIN_WRITE = 60.0  # rewrite status.refreshTime at most this often when idle


@dataclass(frozen=True)
class SyncOutcome:
    """What one sync of an ExternalSecret came to: the Ready condition and the write."""

    ready: bool
    reason: Reason
    message: str
    written: str = ""  # "", "Created", "Updated", "Deleted"
    retryable: bool = True


@dataclass
class SyncCounters:
    """Totals since start, exported on /metrics by stacks.secrets.program."""

    syncs: int = 0
    sync_errors: int = 0
    secrets_written: int = 0
    vault_reads: int = 0


@dataclass
class _Attempt:
    """The subject of one ExternalSecret reconcile, filled in by its steps."""

    key: QueueKey
    es: KubeObject
    version: str
    spec: ExternalSecretSpec | None = None
    outcome: SyncOutcome | None = None
    status: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        meta = self.es.get("metadata") or {}
        return f"'{meta.get('namespace') or ''}/{meta.get('name')}'"


def synced_version(obj: KubeObject) -> str:
    """ESO's syncedResourceVersion: generation plus a digest of labels and annotations."""
    meta = obj.get("metadata") or {}
    digest = hashlib.sha256(
        json.dumps(
            [meta.get("labels") or {}, meta.get("annotations") or {}], sort_keys=True
        ).encode()
    ).hexdigest()[:16]
    return f"{meta.get('generation', 0)}-{digest}"


def owner_conflict(live: KubeObject, es: KubeObject) -> str:
    """Why `live` belongs to someone else ("" when we may write it)."""
    meta = live.get("metadata") or {}
    es_meta = es.get("metadata") or {}
    mine = f"{es_meta.get('namespace')}/{es_meta.get('name')}"
    for ref in meta.get("ownerReferences") or []:
        if ref.get("controller") and ref.get("uid") != es_meta.get("uid"):
            return f"it is controlled by {ref.get('kind')} '{ref.get('name')}'"
    writer = (meta.get("annotations") or {}).get(OWNER_ANNOTATION)
    if writer and writer != mine:
        return f"it is managed by ExternalSecret '{writer}'"
    return ""


class SecretsController(ObjectReconciler[_Attempt]):
    """ExternalSecrets in the controller shape; stores through `Stores` (stores.py)."""

    def __init__(
        self,
        client: KubeClient,
        namespace: str | None = None,
        recorder: EventRecorder | None = None,
        workers: int = 4,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.recorder = recorder or EventRecorder(client, FIELD_MANAGER)
        self.clock = clock
        self.counters = SyncCounters()
        self._lock = threading.Lock()
        # The version (synced_version) that last failed, per key: a spec change retries
        # at once instead of waiting out the runtime's backoff of the old spec.
        self._failed_version: dict[QueueKey, str] = {}
        self._synced_at: dict[tuple[str, str], float] = {}
        self._applied: dict[tuple[str, str], tuple[str, float]] = {}
        self.stores = Stores(client, self._cached)
        self.store_reconciler = StoreReconciler(self.stores)
        self.runtime = Runtime(
            name="secrets",
            client=client,
            reconcile=self.dispatch,
            workers=workers,
            max_backoff=MAX_FAILURE_DELAY,
            watches=[
                Watch(API_VERSION, EXTERNAL_SECRET, kind_key(EXTERNAL_SECRET), namespace),
                Watch(API_VERSION, SECRET_STORE, self._store_keys, namespace),
                Watch(API_VERSION, CLUSTER_SECRET_STORE, self._store_keys),
            ],
        )

    # ---- wiring -------------------------------------------------------------------------

    def run(self, stop: threading.Event, leader: LeaderElector | None = None) -> None:
        """Run until `stop` is set (optionally as the Lease holder); close the stores."""
        try:
            self.runtime.run(stop, leader)
        finally:
            self.stores.close()

    def _cached(self, kind: str, namespace: str, name: str) -> KubeObject | None:
        informer = self.runtime.informers.get(kind)
        if informer is None:
            return None
        return informer.get_named(namespace if kind != CLUSTER_SECRET_STORE else "", name)

    def _store_keys(self, event: WatchEvent) -> list[QueueKey]:
        meta = event.object.get("metadata") or {}
        kind = str(event.object.get("kind"))
        namespace = str(meta.get("namespace") or "")
        name = str(meta.get("name"))
        keys: list[QueueKey] = [(kind, namespace, name)]
        informer = self.runtime.informers.get(EXTERNAL_SECRET)
        if informer is not None:
            for es in informer.items():
                ref = (es.get("spec") or {}).get("secretStoreRef") or {}
                es_ns = str((es.get("metadata") or {}).get("namespace") or "")
                if (
                    ref.get("name") == name
                    and (ref.get("kind") or SECRET_STORE) == kind
                    and (kind == CLUSTER_SECRET_STORE or es_ns == namespace)
                ):
                    keys.append((EXTERNAL_SECRET, es_ns, str(es["metadata"]["name"])))
        return keys

    def dispatch(self, key: QueueKey) -> Result | float | None:
        assert isinstance(key, tuple) and len(key) == 3
        if key[0] == EXTERNAL_SECRET:
            return self.reconcile(key)
        return self.store_reconciler.reconcile(key)

    # ---- ExternalSecret: load, steps, finish --------------------------------------------

    def _forget(self, key: QueueKey) -> None:
        _, namespace, name = split_key(key)
        with self._lock:
            self._failed_version.pop(key, None)
            self._synced_at.pop((namespace, name), None)
            self._applied.pop((namespace, name), None)
        self.runtime.backoff.forget(key)

    def load(self, key: QueueKey) -> _Attempt | None:
        _, namespace, name = split_key(key)
        es = self._cached(EXTERNAL_SECRET, str(namespace), str(name))
        if es is None or (es.get("metadata") or {}).get("deletionTimestamp"):
            self._forget(key)
            return None
        return _Attempt(key, es, synced_version(es))

    def steps(self, subject: _Attempt) -> Sequence[Step[_Attempt]]:
        return [
            ("stores", self._stores_listed),
            ("parse", self._parse),
            ("due", self._due),
            ("sync", self._sync_step),
        ]

    def _stores_listed(self, attempt: _Attempt) -> Stop | None:
        if not self.runtime.synced():
            return Stop(0.5)  # the stores are not listed yet: "store not found" would be a lie
        return None

    def _parse(self, attempt: _Attempt) -> None:
        attempt.spec = parse_external_secret(attempt.es)  # SpecError: stalled, see finish

    def _due(self, attempt: _Attempt) -> Stop | None:
        assert attempt.spec is not None
        due = self._due_in(attempt.key, attempt.es, attempt.spec, attempt.version)
        if due < 0:
            return Stop(None)
        if due > 0:
            return Stop(due)
        return None

    def _sync_step(self, attempt: _Attempt) -> None:
        assert attempt.spec is not None
        self.counters.syncs += 1
        attempt.outcome = self._sync(attempt.es, attempt.spec)

    def _due_in(
        self, key: QueueKey, es: KubeObject, spec: ExternalSecretSpec, version: str
    ) -> float:
        """Seconds until the next sync is due (0: now; negative: never again)."""
        now = self.clock()
        status = es.get("status") or {}
        _, namespace, name = split_key(key)
        with self._lock:
            failed_version = self._failed_version.get(key)
            synced_at = self._synced_at.get((namespace, name))
        if failed_version is not None:
            if failed_version != version:
                self.runtime.backoff.forget(key)
                return 0.0
            return self.runtime.backoff.remaining(key)
        if status.get("syncedResourceVersion") != version:
            return 0.0
        condition = ready_condition(es)
        if condition is None or (
            condition.get("status") != "True" and condition.get("reason") != Reason.DELETED
        ):
            return 0.0
        if spec.refresh_seconds <= 0:
            return -1.0  # synced once; never again until the spec changes
        if synced_at is None:
            synced_at = parse_timestamp(status.get("refreshTime")) or 0.0
        return max(0.0, synced_at + spec.refresh_seconds - now)

    def _store_for(self, es: KubeObject, spec: ExternalSecretSpec) -> KubeObject:
        namespace = str(es["metadata"].get("namespace") or "")
        store = self._cached(spec.store_kind, namespace, spec.store_name)
        if store is None:
            raise TransientError(
                f"{store_label(spec.store_kind, namespace, spec.store_name)} not found"
            )
        return store

    def _sync(self, es: KubeObject, spec: ExternalSecretSpec) -> SyncOutcome:
        namespace = str(es["metadata"].get("namespace") or "")
        es_name = str(es["metadata"]["name"])
        store = self._store_for(es, spec)
        provider = self.stores.provider(store)
        remote: dict[str, Any] = {}
        for remote_key in spec.remote_keys():
            remote[remote_key] = provider.read(remote_key)
            self.counters.vault_reads += 1
        resolution = resolve(spec, remote)
        if resolution.secret is None:
            if resolution.all_gone and spec.deletion is DeletionPolicy.DELETE:
                return self._delete_target(es, spec, namespace)
            return SyncOutcome(
                False,
                Reason.SYNC_ERROR,
                "; ".join(resolution.missing)
                + f"; kept Secret '{namespace}/{spec.target_name}' as it was",
            )
        if spec.creation is CreationPolicy.NONE:
            return SyncOutcome(
                True, Reason.SYNCED, "secret synced (creationPolicy None: nothing written)"
            )
        return self._write(es, es_name, namespace, spec, resolution.secret)

    def _delete_target(
        self, es: KubeObject, spec: ExternalSecretSpec, namespace: str
    ) -> SyncOutcome:
        live = self.client.get("v1", "Secret", spec.target_name, namespace)
        message = "every remote key is gone (deletionPolicy Delete)"
        if live is None:
            return SyncOutcome(
                False,
                Reason.DELETED,
                f"{message}; Secret '{namespace}/{spec.target_name}' is absent",
            )
        conflict = owner_conflict(live, es)
        managed = (live.get("metadata", {}).get("labels") or {}).get(MANAGED_LABEL) == "true"
        if conflict or not managed:
            return SyncOutcome(
                False,
                Reason.SYNC_ERROR,
                f"{message}, but Secret '{namespace}/{spec.target_name}' is not ours to delete"
                + (f": {conflict}" if conflict else ""),
            )
        self.client.delete("v1", "Secret", spec.target_name, namespace)
        with self._lock:
            self._applied.pop((namespace, str(es["metadata"]["name"])), None)
        return SyncOutcome(
            False,
            Reason.DELETED,
            f"{message}; deleted Secret '{namespace}/{spec.target_name}'",
            written="Deleted",
        )

    def _write(
        self,
        es: KubeObject,
        es_name: str,
        namespace: str,
        spec: ExternalSecretSpec,
        desired: DesiredSecret,
    ) -> SyncOutcome:
        key = (namespace, es_name)
        wanted = data_hash(desired)
        now = self.clock()
        with self._lock:
            applied = self._applied.get(key)
        if applied is not None and applied[0] == wanted and now - applied[1] < DRIFT_CHECK_SECONDS:
            return SyncOutcome(True, Reason.SYNCED, "secret synced")
        target = f"'{namespace}/{spec.target_name}'"
        live = self.client.get("v1", "Secret", spec.target_name, namespace)
        if live is not None:
            conflict = owner_conflict(live, es)
            if conflict:
                return SyncOutcome(
                    False, Reason.SYNC_ERROR, f"refusing to write Secret {target}: {conflict}"
                )
        if spec.creation is CreationPolicy.MERGE and live is None:
            return SyncOutcome(
                False,
                Reason.SYNC_ERROR,
                f"Secret {target} does not exist; creationPolicy Merge only adds keys to an existing Secret",
            )
        if (
            live is not None
            and spec.creation is not CreationPolicy.MERGE
            and desired.type
            and live.get("type", "Opaque") != desired.type
        ):
            return SyncOutcome(
                False,
                Reason.SYNC_ERROR,
                f"Secret {target} has type {live.get('type')!r}, the template wants {desired.type!r} "
                "(a Secret's type cannot change: delete the Secret to let it be recreated)",
                retryable=False,
            )
        if live_matches(live, desired, wanted) and not self._stray_keys(live, desired, spec):
            with self._lock:
                self._applied[key] = (wanted, now)
            return SyncOutcome(True, Reason.SYNCED, "secret synced")
        body = self._secret_body(es, es_name, namespace, spec, desired, wanted)
        self.client.apply(body, FIELD_MANAGER, force=True)
        stray = self._stray_keys(live, desired, spec)
        if stray:
            self.client.merge_patch(
                "v1", "Secret", spec.target_name, {"data": dict.fromkeys(stray)}, namespace
            )
        with self._lock:
            self._applied[key] = (wanted, now)
        self.counters.secrets_written += 1
        return SyncOutcome(
            True, Reason.SYNCED, "secret synced", written="Created" if live is None else "Updated"
        )

    @staticmethod
    def _stray_keys(
        live: KubeObject | None, desired: DesiredSecret, spec: ExternalSecretSpec
    ) -> list[str]:
        """Keys in an Owner/Orphan Secret that the ExternalSecret no longer produces."""
        if live is None or spec.creation is CreationPolicy.MERGE:
            return []
        wanted = {k for k, _ in desired.data}
        return sorted(k for k in (live.get("data") or {}) if k not in wanted)

    @staticmethod
    def _secret_body(
        es: KubeObject,
        es_name: str,
        namespace: str,
        spec: ExternalSecretSpec,
        desired: DesiredSecret,
        wanted: str,
    ) -> KubeObject:
        labels = dict(desired.labels)
        labels[MANAGED_LABEL] = "true"
        annotations = dict(desired.annotations)
        annotations[DATA_HASH_ANNOTATION] = wanted
        annotations[OWNER_ANNOTATION] = f"{namespace}/{es_name}"
        metadata: dict[str, Any] = {
            "name": spec.target_name,
            "namespace": namespace,
            "labels": labels,
            "annotations": annotations,
        }
        if spec.creation is CreationPolicy.OWNER:
            metadata["ownerReferences"] = [
                {
                    "apiVersion": API_VERSION,
                    "kind": EXTERNAL_SECRET,
                    "name": es_name,
                    "uid": es["metadata"]["uid"],
                    "controller": True,
                }
            ]
        body: KubeObject = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": metadata,
            "data": desired.encoded(),
        }
        if desired.type and spec.creation is not CreationPolicy.MERGE:
            body["type"] = desired.type
        return body

    def finish(self, attempt: _Attempt, result: Result) -> Result:
        """Record the outcome once: status, events, logs, and what the runtime does next."""
        if result.stopped:
            return result  # not due, or not ready to look: status stays as it is
        es, key, version, spec = attempt.es, attempt.key, attempt.version, attempt.spec
        error = result.error
        if error is not None and result.step == "parse":
            outcome = SyncOutcome(False, Reason.SYNC_ERROR, str(error), retryable=False)
        elif isinstance(error, PlatformError):  # SpecError of a template, Vault, the API
            outcome = SyncOutcome(False, Reason.SYNC_ERROR, str(error))
        elif error is not None:
            raise error  # a bug: the runtime logs it with its traceback and backs off
        else:
            assert attempt.outcome is not None
            outcome = attempt.outcome
        _, namespace, name = split_key(key)
        now = self.clock()
        label = attempt.label
        previous = ready_condition(es) or {}
        status: dict[str, Any] = dict(es.get("status") or {})
        status["conditions"] = set_condition(
            status.get("conditions"),
            "Ready",
            outcome.ready,
            outcome.reason,
            outcome.message,
            timestamp(now),
        )
        if spec is not None:
            status["binding"] = {"name": spec.target_name}
        final: Result
        if outcome.ready or outcome.reason is Reason.DELETED:
            with self._lock:
                self._failed_version.pop(key, None)
                self._synced_at[(namespace, name)] = now
            last = parse_timestamp(status.get("refreshTime")) or 0.0
            if (
                outcome.written
                or status.get("syncedResourceVersion") != version
                or now - last >= max(REFRESH_TIME_MIN_WRITE, spec.refresh_seconds if spec else 0.0)
            ):
                status["refreshTime"] = timestamp(now)
            status["syncedResourceVersion"] = version
            final = Result(
                after=spec.refresh_seconds if spec and spec.refresh_seconds > 0 else None
            )
        else:
            self.counters.sync_errors += 1
            with self._lock:
                self._failed_version[key] = version
            if outcome.retryable:
                # Retried with the runtime's backoff, never slower than the refresh interval.
                cap = (
                    spec.refresh_seconds if spec is not None and spec.refresh_seconds > 0 else None
                )
                final = Result(error=TransientError(outcome.message), max_backoff=cap, logged=True)
            else:
                final = Result(
                    error=PermanentError(outcome.message), retry_stalled=False, logged=True
                )
            if previous.get("message") != outcome.message:
                log.warning("failed to sync ExternalSecret %s: %s", label, outcome.message)
        attempt.status = status
        try:
            write_status(self.client, es, status)
        except PlatformError as error:
            raise TransientError(
                f"failed to write status of ExternalSecret {label}: {error}"
            ) from error
        target = spec.target_name if spec else ""
        if outcome.written:
            log.info(
                "%s Secret '%s/%s' for ExternalSecret %s",
                outcome.written.lower(),
                namespace,
                target,
                label,
            )
            self.recorder.record(es, outcome.written, f"{outcome.written} Secret '{target}'")
        elif not outcome.ready and previous.get("message") != outcome.message:
            self.recorder.record(es, "UpdateFailed", outcome.message, warning=True)
        elif outcome.ready and previous.get("status") != "True":
            self.recorder.record(es, "Synced", f"Secret '{target}' is in sync")
        return final
