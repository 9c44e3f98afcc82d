"""source.py against real git repositories on disk: revisions, paths, recursion,
credentials files, and error messages that never carry a password."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from stacks.reconciler.source import (
    FetchError,
    GitCache,
    RevisionNotFound,
    read_credentials_file,
    redact_url,
)
from tests.integration.reconciler.conftest import GitRepo

pytestmark = pytest.mark.integration


def test_fetch_resolves_branches_tags_shas_and_reads_files(repo: GitRepo, tmp_path: Path) -> None:
    repo.write("apps/a.yaml", "kind: A\n")
    repo.write("apps/sub/b.yml", "kind: B\n")
    repo.write("apps/notes.txt", "ignored\n")
    first = repo.commit("one")
    subprocess.run(["git", "tag", "v1"], cwd=repo.work, check=True)
    subprocess.run(["git", "push", "-q", "origin", "v1"], cwd=repo.work, check=True)
    repo.write("apps/a.yaml", "kind: A2\n")
    second = repo.commit("two")
    cache = GitCache(tmp_path / "cache")
    assert cache.fetch(repo.url, "main") == second
    assert cache.fetch(repo.url, "HEAD") == second
    assert cache.fetch(repo.url, "v1") == first
    assert cache.fetch(repo.url, first) == first
    flat = cache.files(repo.url, second, "apps", recurse=False)
    assert flat is not None and [(f.path, f.content) for f in flat] == [
        ("apps/a.yaml", b"kind: A2\n")
    ]
    deep = cache.files(repo.url, first, "apps", recurse=True)
    assert deep is not None and [f.path for f in deep] == ["apps/a.yaml", "apps/sub/b.yml"]
    assert cache.files(repo.url, second, "nowhere", recurse=False) is None
    assert (
        cache.files(repo.url, second, "apps/a.yaml", recurse=False) is None
    )  # a file, not a directory
    with pytest.raises(RevisionNotFound):
        cache.fetch(repo.url, "no-such-branch")


def test_unreachable_repository_error_has_no_password(tmp_path: Path) -> None:
    cache = GitCache(tmp_path / "cache")
    url = "http://user:hunter2@127.0.0.1:9/gitops.git"
    with pytest.raises(FetchError) as caught:
        cache.fetch(url, "main")
    assert "hunter2" not in str(caught.value)
    assert redact_url(url) == "http://127.0.0.1:9/gitops.git"


def test_credentials_file_longest_prefix_wins(tmp_path: Path) -> None:
    path = tmp_path / "git-credentials"
    path.write_text(
        "# comment\nhttp://any:one@git.local:8080\nhttp://team:two@git.local:8080/team\nhttps://tls:three@git.local:8080\n"
    )
    team = read_credentials_file(path, "http://git.local:8080/team/gitops.git")
    assert team is not None and (team.username, team.password) == ("team", "two")
    other = read_credentials_file(path, "http://git.local:8080/gitops.git")
    assert other is not None and other.username == "any"
    assert read_credentials_file(path, "http://elsewhere/gitops.git") is None
    assert "two" not in repr(team)
