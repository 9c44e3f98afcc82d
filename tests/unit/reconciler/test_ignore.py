"""ignoreDifferences (pure): parsing pointers and the jq subset, matching objects,
the fields hash blind to ignored fields, keeping live values (RespectIgnoreDifferences);
and the sync-options annotation."""

from __future__ import annotations

from typing import Any

import pytest

from stacks.reconciler.ignore import (
    expand,
    fields_hash_ignoring,
    keep_live_values,
    parse_jq,
    parse_rules,
)
from stacks.reconciler.options import AppOptions, object_options

MANAGER = "platform-reconciler"


def deployment(
    replicas: int, image: str = "app:1", fields: Any = None, others: Any = ()
) -> dict[str, Any]:
    managed = [{"manager": MANAGER, "operation": "Apply", "fieldsV1": fields or OURS}]
    managed += list(others)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "team", "managedFields": managed},
        "spec": {
            "replicas": replicas,
            "template": {"spec": {"containers": [{"name": "app", "image": image}]}},
        },
    }


OURS: dict[str, Any] = {
    "f:spec": {
        "f:replicas": {},
        "f:template": {
            "f:spec": {"f:containers": {'k:{"name":"app"}': {".": {}, "f:image": {}, "f:name": {}}}}
        },
    }
}
WITHOUT_REPLICAS = {"f:spec": {"f:template": OURS["f:spec"]["f:template"]}}
WITHOUT_IMAGE: dict[str, Any] = {
    "f:spec": {
        "f:replicas": {},
        "f:template": {"f:spec": {"f:containers": {'k:{"name":"app"}': {".": {}, "f:name": {}}}}},
    }
}
HPA = {
    "manager": "hpa",
    "operation": "Update",
    "subresource": "scale",
    "fieldsV1": {"f:spec": {"f:replicas": {}}},
}
EDIT = {
    "manager": "kubectl-edit",
    "operation": "Update",
    "fieldsV1": {
        "f:spec": {
            "f:template": {"f:spec": {"f:containers": {'k:{"name":"app"}': {"f:image": {}}}}}
        }
    },
}


def rules(**rule: Any) -> Any:
    return parse_rules([{"group": "apps", "kind": "Deployment", **rule}])


@pytest.mark.parametrize(
    "rule",
    [
        {"jsonPointers": ["/spec/replicas"]},
        {"jqPathExpressions": [".spec.replicas"]},
        {"managedFieldsManagers": ["hpa"]},
    ],
)
def test_another_writer_of_an_ignored_field_is_not_drift(rule: dict[str, Any]) -> None:
    matched = rules(**rule)
    git = deployment(1)
    before = fields_hash_ignoring(deployment(1), git, matched, MANAGER)
    scaled = deployment(3, fields=WITHOUT_REPLICAS, others=[HPA])
    assert fields_hash_ignoring(scaled, git, matched, MANAGER) == before
    # A hand edit of a field the rule does not name is still drift.
    edited = deployment(1, "app:2", fields=WITHOUT_IMAGE, others=[EDIT])
    assert fields_hash_ignoring(edited, git, matched, MANAGER) != before


def test_list_items_are_found_by_their_key() -> None:
    matched = rules(
        jqPathExpressions=['.spec.template.spec.containers[] | select(.name == "app") | .image']
    )
    git = deployment(1)
    before = fields_hash_ignoring(deployment(1), git, matched, MANAGER)
    edited = deployment(1, "app:2", fields=WITHOUT_IMAGE, others=[EDIT])
    assert fields_hash_ignoring(edited, git, matched, MANAGER) == before
    pointer = rules(jsonPointers=["/spec/template/spec/containers/0/image"])
    assert fields_hash_ignoring(edited, git, pointer, MANAGER) == fields_hash_ignoring(
        deployment(1), git, pointer, MANAGER
    )


def test_keep_live_values() -> None:
    git = deployment(1)
    live = deployment(5)
    kept = keep_live_values(git, live, rules(jsonPointers=["/spec/replicas"]))
    assert kept["spec"]["replicas"] == 5 and git["spec"]["replicas"] == 1
    gone = deployment(1)
    del gone["spec"]["replicas"]
    assert (
        "replicas"
        not in keep_live_values(git, gone, rules(jsonPointers=["/spec/replicas"]))["spec"]
    )
    by_manager = keep_live_values(
        git, deployment(4, others=[HPA]), rules(managedFieldsManagers=["hpa"])
    )
    assert by_manager["spec"]["replicas"] == 4


def test_rule_matching_and_parsing() -> None:
    (rule,) = parse_rules(
        [{"group": "apps", "kind": "Deployment", "name": "web", "jsonPointers": ["/a~1b/c~0d"]}]
    )
    assert rule.paths == (("a/b", "c~d"),)
    assert rule.matches("apps", "Deployment", "any", "web")
    assert not rule.matches("apps", "Deployment", "any", "api")
    assert not rule.matches("", "Deployment", "any", "web")
    steps = parse_jq('.metadata.annotations["x.io/y"]')
    assert list(expand({"metadata": {"annotations": {"x.io/y": "1"}}}, steps)) == [
        ("metadata", "annotations", "x.io/y")
    ]


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (
            {"kind": "Deployment", "jqPathExpressions": ["del(.spec)"]},
            "outside the supported subset",
        ),
        ({"kind": "Deployment", "jqPathExpressions": ["def f: f; f"]}, "jq path"),
        ({"kind": "Deployment", "jsonPointers": ["spec/replicas"]}, "must start with '/'"),
        ({"kind": "Deployment", "jsonPointers": [""]}, "whole object"),
        ({"jsonPointers": ["/spec"]}, "needs a kind"),
        ({"kind": "Deployment", "jsonPointers": ["/" + "a" * 600]}, "longer than"),
    ],
)
def test_bad_rules_are_refused(raw: dict[str, Any], why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_rules([raw])


def test_sync_options() -> None:
    found = object_options(
        {
            "argocd.argoproj.io/sync-options": "Prune=false, Replace=true",
            "gitops.platform.local/sync-options": "Replace=false",
            "helm.sh/resource-policy": "keep",
        }
    )
    assert found == {"Prune": "false", "Replace": "false", "Delete": "false"}
    app = AppOptions.of(
        ["PruneLast=true", "PrunePropagationPolicy=orphan", "FailOnSharedResource=true"]
    )
    assert app.prune_last and app.fail_on_shared and app.propagation == "Orphan"
    assert AppOptions.of([]).propagation == "Background"  # as before (Argo CD: foreground)
    assert AppOptions.of(["PrunePropagationPolicy=foreground"]).propagation == "Foreground"
