"""Plan: desired vs live vs inventory (pure). Wave and kind ordering, drift, pruning rules."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from stacks.kube.cache import RefKey
from stacks.kube.objects import ObjectRef
from stacks.reconciler.api import AppKey, tracking_id
from stacks.reconciler.plan import (
    Action,
    Desired,
    InventoryEntry,
    Live,
    Plan,
    content_hash,
    fields_hash,
    make_plan,
    mass_prune_allowed,
    normalize,
)
from stacks.reconciler.render import RenderError, render

DATA = Path(__file__).parent / "testdata"
APP = AppKey("platform", "demo")
NAMESPACED = {
    "ConfigMap": True,
    "Service": True,
    "Deployment": True,
    "Job": True,
    "ServiceAccount": True,
    "Namespace": False,
    "CustomResourceDefinition": False,
}


def scope(api_version: str, kind: str) -> bool | None:
    return NAMESPACED.get(kind)


def desired_from(name: str) -> list[Desired]:
    return normalize(render([(name, (DATA / name).read_bytes())]), APP, "team", scope)


def cm(name: str, data: str = "x", wave: int = 0) -> Desired:
    obj = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "team"},
        "data": {"k": data},
    }
    return Desired.of(obj, wave)


def live_for(d: Desired, fields: str = "f1") -> Live:
    ref = d.ref
    return Live(
        fields=fields, tracking=tracking_id(APP, ref.group, ref.kind, ref.namespace, ref.name)
    )


def entry(d: Desired, fields: str = "f1") -> InventoryEntry:
    return InventoryEntry(d.ref, d.hash, fields)


def plan_of(
    desired: list[Desired],
    live: Mapping[RefKey, Live | None],
    inventory: list[InventoryEntry],
    prune: bool = True,
    allow_empty: bool = False,
    allow_mass_prune: bool = False,
    revision: str = "",
) -> Plan:
    return make_plan(
        APP,
        desired,
        live,
        inventory,
        prune=prune,
        allow_empty=allow_empty,
        allow_mass_prune=allow_mass_prune,
        revision=revision,
    )


def test_normalize_defaults_namespace_stamps_tracking_and_reads_waves() -> None:
    items = {d.ref.name: d for d in desired_from("multi.yaml")}
    web = items["web"]
    assert web.ref.namespace == "team" and web.wave == 2
    assert (
        web.obj["metadata"]["annotations"]["gitops.platform.local/tracking-id"]
        == "platform/demo:apps/Deployment:team/web"
    )
    assert web.obj["metadata"]["labels"]["gitops.platform.local/managed"] == "true"
    assert web.where == "multi.yaml:9"


def test_normalize_unknown_kind_and_bad_wave_name_the_line() -> None:
    bad = [
        (
            "x.yaml",
            b"apiVersion: example.com/v1\nkind: Gadget\nmetadata: {name: g}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  annotations: {gitops.platform.local/sync-wave: soon}\n",
        )
    ]
    with pytest.raises(RenderError) as caught:
        normalize(render(bad), APP, "team", scope)
    text = str(caught.value)
    assert "x.yaml:1: the API server has no kind 'Gadget'" in text
    assert "x.yaml:5: annotation gitops.platform.local/sync-wave must be an integer" in text


def test_waves_then_kind_order_then_name() -> None:
    desired = desired_from("ordering.yaml")
    plan = plan_of(desired, {d.ref.key: None for d in desired}, [])
    order = [[(s.ref.kind, s.ref.name) for s in wave.steps] for wave in plan.waves]
    assert [w.number for w in plan.waves] == [-1, 0]
    assert order[0] == [("Job", "migrate")]
    assert order[1] == [
        ("Namespace", "team"),
        ("ServiceAccount", "web"),
        ("ConfigMap", "a-config"),
        ("ConfigMap", "b-config"),
        ("CustomResourceDefinition", "widgets.example.com"),
        ("Service", "web"),
        ("Deployment", "web"),
        ("Widget", "w"),  # a CR defined by a CRD in the same render: planned, last
    ]
    groups = [[s.ref.kind for s in g] for g in plan.waves[1].groups]
    assert ["ConfigMap", "ConfigMap"] in groups  # one kind group may be applied in parallel


def test_create_update_unchanged_and_drift() -> None:
    a, b, c, d = cm("a"), cm("b"), cm("c"), cm("d")
    changed = cm("b", "new")
    live = {
        a.ref.key: live_for(a),
        b.ref.key: live_for(b),
        c.ref.key: live_for(c, "edited"),
        d.ref.key: None,
    }
    inventory = [entry(a), entry(b), entry(c), entry(d)]
    plan = plan_of([a, changed, c, d], live, inventory)
    actions = {s.ref.name: (s.action, s.reason, s.drift) for s in plan.steps}
    assert actions["a"] == (Action.UNCHANGED, "", False)
    assert actions["b"] == (Action.UPDATE, "changed in git", False)
    assert actions["c"] == (Action.UPDATE, "changed in the cluster", True)
    assert actions["d"] == (Action.CREATE, "missing from the cluster", True)
    assert not plan.prunes and not plan.in_sync


def test_unknown_live_state_is_applied_but_never_pruned() -> None:
    a, gone = cm("a"), cm("gone")
    plan = plan_of([a], {}, [entry(a), entry(gone)])
    assert plan.steps[0].action is Action.UPDATE
    assert not plan.prunes and not plan.orphans


def test_prune_only_from_inventory_with_our_tracking_id() -> None:
    keep, old, foreign, vanished = cm("keep"), cm("old"), cm("foreign"), cm("vanished")
    live = {
        keep.ref.key: live_for(keep),
        old.ref.key: live_for(old),
        foreign.ref.key: Live(fields="f1", tracking="other/app:/ConfigMap:team/foreign"),
        vanished.ref.key: None,
    }
    inventory = [entry(keep), entry(old), entry(foreign), entry(vanished)]
    plan = plan_of([keep], live, inventory)
    assert [p.ref.name for p in plan.prunes] == ["old"]
    assert {p.ref.name for p in plan.orphans} == {"foreign", "vanished"}
    assert not plan.blocked


def test_pvcs_namespaces_and_crds_are_kept_unless_annotated() -> None:
    keep = cm("keep")
    ns = ObjectRef("", "Namespace", "", "team", "v1")
    pvc = ObjectRef("", "PersistentVolumeClaim", "team", "data", "v1")
    pvc2 = ObjectRef("", "PersistentVolumeClaim", "team", "scratch", "v1")
    crd = ObjectRef(
        "apiextensions.k8s.io", "CustomResourceDefinition", "", "widgets.example.com", "v1"
    )

    def tracked(ref: ObjectRef, prune: str = "") -> Live:
        return Live("f", tracking_id(APP, ref.group, ref.kind, ref.namespace, ref.name), prune)

    live = {
        keep.ref.key: live_for(keep),
        ns.key: tracked(ns),
        pvc.key: tracked(pvc),
        pvc2.key: tracked(pvc2, "true"),
        crd.key: tracked(crd),
    }
    inventory = [entry(keep), *(InventoryEntry(r, "h", "f") for r in (ns, pvc, pvc2, crd))]
    plan = plan_of([keep], live, inventory, allow_mass_prune=True)
    assert [p.ref.name for p in plan.prunes] == ["scratch"]
    assert {p.ref.name for p in plan.orphans} == {"team", "data", "widgets.example.com"}


def test_breaker_holds_a_prune_of_more_than_half() -> None:
    items = [cm(f"c{i}") for i in range(4)]
    live = {d.ref.key: live_for(d) for d in items}
    inventory = [entry(d) for d in items]
    plan = plan_of(items[:2], live, inventory)  # prune 2 of 4: exactly half is allowed
    assert len(plan.prunes) == 2 and not plan.blocked
    plan = plan_of(items[:1], live, inventory, revision="abc123def")
    assert not plan.prunes and len(plan.pending_prunes) == 3
    assert "would prune 3 of the 4" in plan.blocked and "abc123def" in plan.blocked
    plan = plan_of(items[:1], live, inventory, allow_mass_prune=True)
    assert len(plan.prunes) == 3


def test_empty_render_and_prune_off_never_prune() -> None:
    a = cm("a")
    live = {a.ref.key: live_for(a)}
    plan = plan_of([], live, [entry(a)], allow_mass_prune=True)
    assert not plan.prunes and "empty" in plan.blocked
    plan = plan_of([], live, [entry(a)], allow_empty=True, allow_mass_prune=True)
    assert [p.ref.name for p in plan.prunes] == ["a"]
    plan = plan_of(
        [cm("b")], {**live, cm("b").ref.key: None}, [entry(a)], prune=False, allow_mass_prune=True
    )
    assert not plan.prunes and plan.pending_prunes and "pruning is off" in plan.blocked


def test_mass_prune_annotation() -> None:
    revision = "abc1234567" + "0" * 30
    assert mass_prune_allowed("true", revision)
    assert mass_prune_allowed(revision, revision)
    assert mass_prune_allowed("abc1234", revision)
    assert not mass_prune_allowed("", revision)
    assert not mass_prune_allowed("def1234", revision)


@pytest.mark.parametrize(
    "value",
    ["a", "abc", "abc123", " true ", "true ", "TRUE", "True", "yes", " abc1234", "ABC1234"],
)
def test_mass_prune_annotation_refuses_loose_values(value: str) -> None:
    """Issue 14: any prefix (one character) or ` true ` with spaces used to allow it."""
    assert not mass_prune_allowed(value, "abc1234567" + "0" * 30)


def test_fields_hash_reads_only_our_apply_entry() -> None:
    live = {
        "metadata": {
            "managedFields": [
                {"manager": "kubectl-edit", "operation": "Update", "fieldsV1": {"f:data": {}}},
                {
                    "manager": "platform-reconciler",
                    "operation": "Apply",
                    "fieldsV1": {"f:data": {"f:k": {}}},
                },
            ]
        }
    }
    assert fields_hash(live) == content_hash({"f:data": {"f:k": {}}})
    assert fields_hash({"metadata": {}}) == ""


def test_inventory_entry_round_trip() -> None:
    e = InventoryEntry(ObjectRef("apps", "Deployment", "team", "web", "v1"), "h", "f")
    assert e.to_json() == {"id": "team_web_apps_Deployment", "v": "v1", "hash": "h", "fields": "f"}
    assert InventoryEntry.from_json(e.to_json()) == e
