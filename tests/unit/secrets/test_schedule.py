"""When an ExternalSecret syncs: refresh interval, force-sync, once-only, failure backoff,
and that status is written on failure too (fake API, fake clock; no I/O)."""

from __future__ import annotations

from typing import Any, cast

from stacks.kube.client import KubeClient
from stacks.kube.controller import Result
from stacks.secrets.api import Reason, parse_external_secret
from stacks.secrets.controller import SecretsController, SyncOutcome, _Attempt, synced_version
from stacks.secrets.status import timestamp


class FakeAPI:
    def __init__(self) -> None:
        self.statuses: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []

    def apply_status(self, obj: dict[str, Any], field_manager: str) -> dict[str, Any]:
        self.statuses.append(obj)
        return obj

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.events.append(obj)
        return obj


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make(refresh: str = "10s") -> tuple[SecretsController, FakeAPI, Clock, dict[str, Any]]:
    api = FakeAPI()
    clock = Clock(1_800_000_000.0)
    controller = SecretsController(cast(KubeClient, api), clock=clock)
    es: dict[str, Any] = {
        "apiVersion": "secrets.platform.local/v1",
        "kind": "ExternalSecret",
        "metadata": {
            "name": "app",
            "namespace": "ns",
            "uid": "u",
            "generation": 1,
            "annotations": {},
        },
        "spec": {
            "refreshInterval": refresh,
            "secretStoreRef": {"name": "vault"},
            "data": [{"secretKey": "a", "remoteRef": {"key": "k", "property": "a"}}],
        },
    }
    return controller, api, clock, es


def synced(es: dict[str, Any], at: float) -> None:
    es["status"] = {
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "SecretSynced",
                "message": "secret synced",
                "lastTransitionTime": timestamp(at),
            }
        ],
        "refreshTime": timestamp(at),
        "syncedResourceVersion": synced_version(es),
    }


def test_refresh_interval_and_force_sync() -> None:
    controller, _, clock, es = make("10s")
    spec = parse_external_secret(es)
    key = ("ExternalSecret", "ns", "app")
    assert controller._due_in(key, es, spec, synced_version(es)) == 0.0  # never synced
    synced(es, clock.now)
    clock.now += 4
    assert controller._due_in(key, es, spec, synced_version(es)) == 6.0
    clock.now += 6
    assert controller._due_in(key, es, spec, synced_version(es)) == 0.0
    clock.now -= 6
    es["metadata"]["annotations"]["secrets.platform.local/force-sync"] = "now"
    assert controller._due_in(key, es, spec, synced_version(es)) == 0.0


def test_refresh_interval_zero_syncs_once() -> None:
    controller, _, clock, es = make("0")
    spec = parse_external_secret(es)
    synced(es, clock.now)
    clock.now += 10_000
    assert controller._due_in(KEY, es, spec, synced_version(es)) < 0
    es["metadata"]["generation"] = 2
    assert controller._due_in(KEY, es, spec, synced_version(es)) == 0.0


KEY = ("ExternalSecret", "ns", "app")


def fail(
    controller: SecretsController, es: dict[str, Any], key: tuple[str, str, str], refresh: str
) -> float | None:
    """One failed sync, as the runtime sees it: finish writes status, requeue decides."""
    spec = parse_external_secret(make(refresh)[3])
    attempt = _Attempt(key, es, synced_version(es), spec, FAILING)
    return controller.runtime.requeue(key, controller.finish(attempt, Result()))


FAILING = SyncOutcome(False, Reason.SYNC_ERROR, "Vault at http://v is sealed or not initialised")


def test_failures_back_off_within_the_refresh_interval_and_always_write_status() -> None:
    controller, api, _clock, es = make("1h")
    spec = parse_external_secret(es)
    version = synced_version(es)
    delays = [fail(controller, es, KEY, "1h") for _ in range(8)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert 29.0 < controller._due_in(KEY, es, spec, version) <= 30.0
    assert api.statuses, "status is written on failure"
    condition = api.statuses[0]["status"]["conditions"][0]
    assert condition["status"] == "False" and condition["reason"] == "SecretSyncedError"
    assert api.events[0]["reason"] == "UpdateFailed" and api.events[0]["type"] == "Warning"
    # a spec change retries at once, and the backoff starts again
    es["metadata"]["generation"] = 2
    assert controller._due_in(KEY, es, spec, synced_version(es)) == 0.0
    assert controller.runtime.backoff.attempts(KEY) == 0

    other = ("ExternalSecret", "ns", "other")
    assert fail(controller, es, other, "2s") == 1.0
    for _ in range(4):
        delay = fail(controller, es, other, "2s")
    assert delay == 2.0  # never longer than the refresh interval
