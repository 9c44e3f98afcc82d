"""The Application status stays bounded however many objects an app manages (issue 14:
it grew by ~237 bytes per object, past etcd's limit at ~6,000 objects)."""

from __future__ import annotations

import json
from typing import Any

from stacks.reconciler.status import FULL_RESOURCES, MAX_LISTED, Report, to_status


def _entry(i: int, status: str = "Synced", health: str | None = "Healthy") -> dict[str, Any]:
    entry: dict[str, Any] = {
        "group": "apps",
        "version": "v1",
        "kind": "Deployment",
        "namespace": "team-with-a-long-namespace-name",
        "name": f"service-number-{i:05d}",
        "status": status,
        "syncWave": 0,
    }
    if health:
        entry["health"] = {
            "status": health,
            "message": f"Deployment 'service-number-{i:05d}' successfully rolled out",
        }
    return entry


def _report(resources: list[dict[str, Any]]) -> Report:
    report = Report(1, {}, {})
    report.resources = resources
    return report


def test_a_small_app_lists_every_object() -> None:
    resources = [_entry(i) for i in range(FULL_RESOURCES)]
    status = to_status(_report(resources), {})
    assert status["resources"] == resources
    assert status["resourcesOmitted"] == 0
    assert status["resourceCounts"]["total"] == FULL_RESOURCES


def test_a_large_app_lists_only_what_needs_attention_and_counts_the_rest() -> None:
    resources = [_entry(i) for i in range(6000)]
    resources[10] = _entry(10, health="Degraded")
    resources[20] = _entry(20, status="OutOfSync")
    resources.append({**_entry(6000, status="OutOfSync", health=None), "requiresPruning": True})
    status = to_status(_report(resources), {})
    assert [e["name"] for e in status["resources"]] == [
        "service-number-00010",
        "service-number-00020",
        "service-number-06000",
    ]
    assert status["resourcesOmitted"] == 6001 - 3
    counts = status["resourceCounts"]
    assert counts["total"] == 6001 and counts["outOfSync"] == 2 and counts["requiresPruning"] == 1
    assert counts["health"] == {"Degraded": 1, "Healthy": 5999}
    size = len(json.dumps({k: status[k] for k in ("resources", "resourceCounts")}))
    assert size < 2_000, size


def test_the_list_is_capped_when_everything_is_wrong() -> None:
    resources = [_entry(i, health="Progressing") for i in range(6000)]
    status = to_status(_report(resources), {})
    assert len(status["resources"]) == MAX_LISTED
    assert status["resourcesOmitted"] == 6000 - MAX_LISTED
    assert len(json.dumps(status["resources"])) < 40_000  # whatever the app's size


def test_a_run_that_compared_nothing_keeps_the_last_lists() -> None:
    previous = to_status(_report([_entry(i) for i in range(300)]), {})
    status = to_status(Report(1, {}, {}), previous)
    assert status["resources"] == previous["resources"] == []
    assert status["resourceCounts"] == previous["resourceCounts"]
    assert status["resourcesOmitted"] == 300
