"""The desired-state loader's one rule for live state, shared by the controller and
`platform diff`: absent is None, Forbidden is left out, any other error is raised."""

from __future__ import annotations

from typing import Any, cast

import pytest

from stacks.kube.errors import ApiError, Forbidden, NotFound
from stacks.kube.objects import KubeObject, ObjectRef
from stacks.reconciler.desired import Loader, LoaderClient
from stacks.reconciler.source import GitCache


def _ref(name: str) -> ObjectRef:
    return ObjectRef.of(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "a"}}
    )


def _loader(tmp_path: Any) -> Loader:
    return Loader(cast(LoaderClient, object()), GitCache(tmp_path))


def test_live_absent_is_none_forbidden_is_unknown(tmp_path: Any) -> None:
    there: KubeObject = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "there", "namespace": "a"},
    }

    def get(ref: ObjectRef) -> KubeObject | None:
        if ref.name == "gone":
            raise NotFound("not found", 404)
        if ref.name == "hidden":
            raise Forbidden("forbidden", 403)
        return there if ref.name == "there" else None

    live, objects = _loader(tmp_path).live(
        [_ref("there"), _ref("gone"), _ref("hidden"), _ref("none")], get
    )
    assert objects[_ref("there").key] == there
    assert live[_ref("there").key] is not None
    assert live[_ref("gone").key] is None
    assert live[_ref("none").key] is None
    assert _ref("hidden").key not in live  # unknown: never pruned, the apply says why


def test_live_other_errors_are_raised_not_taken_for_absent(tmp_path: Any) -> None:
    def get(ref: ObjectRef) -> KubeObject | None:
        raise ApiError("the server is on fire", 500)

    with pytest.raises(ApiError, match="on fire"):
        _loader(tmp_path).live([_ref("x")], get)
