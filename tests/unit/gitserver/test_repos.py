"""repos.py: repository names can never leave the data directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from stacks.gitserver.repos import InvalidRepoName, RepoStore, normalise_name


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ("gitops", "gitops"),
        ("gitops.git", "gitops"),
        ("my-app_2.v1", "my-app_2.v1"),
        ("_x", "_x"),
        ("tenants/alice.git", "tenants/alice"),  # one folder level (issue 19)
    ],
)
def test_valid_names(raw: str, name: str) -> None:
    assert normalise_name(raw) == name


@pytest.mark.parametrize(
    "raw",
    [
        "",
        ".git",
        "..",
        "../etc",
        "a/b/c",
        "/a",
        "a/",
        "a/../b",
        "a.git/b",
        "a/.b",
        "a\\b",
        ".hidden",
        "-rf",
        "a..b",
        "trailing.",
        "sp ace",
        "nul\x00",
        "new\nline",
        "ünïcode",
        "x" * 101,
        "%2e%2e",
    ],
)
def test_invalid_names(raw: str) -> None:
    with pytest.raises(InvalidRepoName):
        normalise_name(raw)


def test_paths_stay_inside_the_root(tmp_path: Path) -> None:
    store = RepoStore(tmp_path / "data")
    assert store.path("gitops") == tmp_path / "data" / "gitops.git"
    assert store.path("gitops.git").parent == tmp_path / "data"
    with pytest.raises(InvalidRepoName):
        store.path("../outside")


def test_two_level_names_create_list_and_delete(tmp_path: Path) -> None:
    store = RepoStore(tmp_path / "data")
    store.ensure_root()
    assert store.create("tenants/alice")
    assert store.create("gitops")
    assert store.names() == ["gitops", "tenants/alice"]
    assert store.path("tenants/alice") == tmp_path / "data" / "tenants" / "alice.git"
    assert store.delete("tenants/alice")
    assert not store.delete("tenants/alice")
    assert store.names() == ["gitops"]
