"""The Application status stays bounded however many objects an app manages (issue 14:
it grew by ~237 bytes per object, past etcd's limit at ~6,000 objects)."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
from typing import Any

import pytest

from stacks.kube.objects import ObjectRef
from stacks.reconciler.plan import InventoryEntry
from stacks.reconciler.status import (
    FULL_RESOURCES,
    INLINE_INVENTORY,
    MAX_LISTED,
    InventoryUnreadable,
    Report,
    read_inventory,
    to_status,
)


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


# ---- the inventory: every object, compact ------------------------------------------------


def _inventory(count: int) -> list[InventoryEntry]:
    return [
        InventoryEntry(
            ObjectRef("", "ConfigMap", "team-with-a-long-namespace-name", f"config-{i:05d}", "v1"),
            hashlib.sha256(str(i).encode()).hexdigest()[:16],  # content hashes do not repeat
            "5f2a9c0e7b13d864",
        )
        for i in range(count)
    ]


def test_a_small_inventory_is_a_readable_list() -> None:
    entries = _inventory(INLINE_INVENTORY)
    report = Report(1, {}, {})
    report.inventory = entries
    status = to_status(report, {})
    assert status["inventory"] == [e.to_json() for e in entries]
    assert status["inventoryCompressed"] is None  # removes a compressed one (merge patch)
    assert read_inventory(status) == entries


def test_a_large_inventory_is_compressed_and_reads_back_whole() -> None:
    entries = _inventory(10_000)
    report = Report(1, {}, {})
    report.inventory = entries
    status = to_status(report, {})
    assert status["inventory"] is None  # removes a list from an earlier, smaller sync
    packed = status["inventoryCompressed"]
    assert packed["count"] == 10_000 and packed["encoding"] == "gzip+base64"
    # About 19 bytes per object instead of about 100: far below etcd's 1.5 MiB.
    assert len(json.dumps(packed)) < 300_000, len(json.dumps(packed))
    assert read_inventory(status) == entries
    # What the docstring tells a user to run gives the same entries.
    assert json.loads(gzip.decompress(base64.b64decode(packed["data"]))) == [
        e.to_json() for e in entries
    ]
    # The same inventory encodes the same (no status write for an unchanged app).
    assert to_status(report, {})["inventoryCompressed"] == packed


def test_a_run_that_learned_no_inventory_keeps_the_compressed_one() -> None:
    report = Report(1, {}, {})
    report.inventory = _inventory(500)
    previous = to_status(report, {})
    status = to_status(Report(1, {}, {}), previous)
    assert status["inventoryCompressed"] == previous["inventoryCompressed"]
    assert status["inventory"] is None
    assert read_inventory(status) == report.inventory


def test_an_older_plain_list_still_reads() -> None:
    entries = _inventory(300)  # beyond the inline size: written by a version before this
    assert read_inventory({"inventory": [e.to_json() for e in entries]}) == entries


@pytest.mark.parametrize(
    "packed",
    [
        {"count": 1, "encoding": "gzip+base64", "data": "not base64 !"},
        {"count": 1, "encoding": "gzip+base64", "data": base64.b64encode(b"plain").decode()},
        {"count": 1, "encoding": "zstd", "data": ""},
        {
            "count": 1,
            "encoding": "gzip+base64",
            "data": base64.b64encode(gzip.compress(b'{"not": "a list"}')).decode(),
        },
        {  # a gzip bomb: 100 MB of zeros in about 100 KB
            "count": 1,
            "encoding": "gzip+base64",
            "data": base64.b64encode(gzip.compress(b"0" * 100_000_000)).decode(),
        },
    ],
    ids=["base64", "gzip", "encoding", "shape", "bomb"],
)
def test_an_unreadable_inventory_is_an_error_never_an_empty_one(packed: dict[str, Any]) -> None:
    with pytest.raises(InventoryUnreadable, match="inventoryCompressed cannot be read"):
        read_inventory({"inventoryCompressed": packed})
