"""repos.py: repository names can never leave the data directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from stacks.gitserver.repos import InvalidRepoName, RepoStore, normalise_name


@pytest.mark.parametrize(
    ("raw", "name"),
    [("gitops", "gitops"), ("gitops.git", "gitops"), ("my-app_2.v1", "my-app_2.v1"), ("_x", "_x")],
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
        "a/b",
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
