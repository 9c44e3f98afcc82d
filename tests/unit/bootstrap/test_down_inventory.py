"""`platform down` deletes what every Application's inventory lists, in both forms the
reconciler writes: the plain `status.inventory` list and, beyond 200 objects, the gzip'd
`status.inventoryCompressed` (a down that read only the plain list left large apps'
objects behind). An unreadable inventory is warned about, not fatal."""

from __future__ import annotations

from typing import Any

from bootstrap.stages.reconciler import managed_objects
from stacks.kube.objects import ObjectRef
from stacks.reconciler.plan import InventoryEntry
from stacks.reconciler.status import inventory_status


def _app(name: str, count: int) -> dict[str, Any]:
    entries = [
        InventoryEntry(ObjectRef("", "ConfigMap", "demo", f"{name}-{i}", "v1"), hash="h")
        for i in range(count)
    ]
    return {"metadata": {"name": name}, "status": inventory_status(entries)}


def test_both_inventory_forms_are_read() -> None:
    small, large = _app("small", 3), _app("large", 250)
    assert small["status"]["inventory"] and large["status"]["inventoryCompressed"]
    warnings: list[str] = []
    refs = managed_objects([small, large, {"metadata": {"name": "new"}}], warnings.append)
    assert len(refs) == 253
    assert {r.name for r in refs} >= {"small-0", "large-0", "large-249"}
    assert warnings == []


def test_an_unreadable_inventory_is_warned_about_and_skipped() -> None:
    broken = _app("broken", 250)
    broken["status"]["inventoryCompressed"]["data"] = "not base64 gzip"
    warnings: list[str] = []
    refs = managed_objects([broken, _app("small", 2)], warnings.append)
    assert [r.name for r in refs] == ["small-0", "small-1"]
    assert len(warnings) == 1 and "broken" in warnings[0] and "inventoryCompressed" in warnings[0]
