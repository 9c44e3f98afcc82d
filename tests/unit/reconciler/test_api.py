"""Application spec parsing, durations, tracking ids."""

from __future__ import annotations

import pytest

from stacks.errors import PermanentError
from stacks.reconciler.api import AppKey, AppSpec, owner_of_tracking, parse_duration, tracking_id
from stacks.reconciler.source import clean_path


def test_durations() -> None:
    assert parse_duration("3m", 0) == 180
    assert parse_duration("1h30m", 0) == 5400
    assert parse_duration("500ms", 0) == 0.5
    assert parse_duration("", 7) == 7
    assert parse_duration("42", 0) == 42
    with pytest.raises(ValueError):
        parse_duration("3 minutes", 0)


def test_parse_with_defaults_and_policy() -> None:
    spec = AppSpec.parse(
        {
            "metadata": {
                "name": "web",
                "namespace": "apps",
                "generation": 3,
                "annotations": {"gitops.platform.local/refresh": "r1"},
                "finalizers": ["resources-finalizer.gitops.platform.local"],
            },
            "spec": {
                "source": {
                    "repoURL": "http://git/gitops.git",
                    "path": "./apps/web/",
                    "directory": {"recurse": True},
                },
                "destination": {"namespace": "web"},
                "syncPolicy": {
                    "automated": {"prune": True},
                    "syncOptions": ["CreateNamespace=true"],
                },
                "dependsOn": [{"name": "base"}, {"name": "db", "namespace": "data"}],
                "interval": "30s",
            },
        }
    )
    assert spec.key == AppKey("apps", "web")
    assert (
        spec.source.path == "apps/web"
        and spec.source.target_revision == "HEAD"
        and spec.source.recurse
    )
    assert spec.automated and spec.prune and not spec.self_heal and spec.create_namespace
    assert spec.depends_on == (AppKey("apps", "base"), AppKey("data", "db"))
    assert spec.interval == 30 and spec.generation == 3 and spec.refresh == "r1" and spec.cascade


def test_no_automated_means_manual_sync_only() -> None:
    spec = AppSpec.parse(
        {"metadata": {"name": "a", "namespace": "n"}, "spec": {"source": {"repoURL": "file:///r"}}}
    )
    assert not spec.automated and spec.interval == 180 and spec.source.path == "."


def test_missing_repo_url_is_a_permanent_error() -> None:
    with pytest.raises(PermanentError, match=r"spec\.source\.repoURL"):
        AppSpec.parse({"metadata": {"name": "a", "namespace": "n"}, "spec": {"source": {}}})


def test_tracking_id_round_trip() -> None:
    value = tracking_id(AppKey("platform", "root"), "apps", "Deployment", "web", "api")
    assert value == "platform/root:apps/Deployment:web/api"
    assert owner_of_tracking(value) == AppKey("platform", "root")
    assert owner_of_tracking("garbage") is None


@pytest.mark.parametrize(
    ("path", "expected"),
    [("./apps", "apps"), ("apps/", "apps"), (".", "."), ("", "."), ("a/./b//", "a/b")],
)
def test_source_path_is_normalised_as_argo_cd_reads_it(path: str, expected: str) -> None:
    assert clean_path(path) == expected


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("/etc", "is absolute; a path is relative to the repository root"),
        ("../..", "leaves the repository"),
        ("apps/../../x", "leaves the repository"),
        ("apps\x00x", "contains a control character"),
        ("a" * 2000, "over the 1024-byte limit"),
    ],
)
def test_source_path_outside_the_repository_is_refused(path: str, why: str) -> None:
    with pytest.raises(PermanentError, match=why) as caught:
        clean_path(path)
    assert "relative to the repository root" in caught.value.hint
