"""source.py against real git repositories on disk: revisions, paths, recursion,
credentials files, and error messages that never carry a password."""

from __future__ import annotations

import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from stacks.reconciler.source import (
    Credentials,
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


def test_concurrent_fetches_of_one_repository_coalesce(repo: GitRepo, tmp_path: Path) -> None:
    """A push that wakes many Applications of one repository costs one `git fetch`."""
    repo.write("a/x.yaml", "kind: A\n")
    repo.write("b/y.yaml", "kind: B\n")
    first = repo.commit("one")
    cache = GitCache(tmp_path / "cache")
    assert cache.fetch(repo.url, "main") == first
    assert cache.fetches == 1
    repo.write("a/x.yaml", "kind: A2\n")
    second = repo.commit("two")
    asked = time.monotonic()  # the webhook arrived
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda _: cache.fetch(repo.url, "main", since=asked), range(32)))
    assert answers == [second] * 32
    assert cache.fetches == 2
    assert cache.fetch(repo.url, "main", since=asked) == second  # fresh enough: no fetch
    assert cache.fetches == 2
    assert cache.fetch(repo.url, "HEAD", since=asked) == second  # needs the remote HEAD
    assert cache.fetches == 3
    assert cache.fetch(repo.url, "main", since=asked) == second  # which also serves branches
    assert cache.fetches == 3
    # Another identity is never served by a fetch made as someone else.
    assert cache.fetch(repo.url, "main", Credentials("u", "p"), since=asked) == second
    assert cache.fetches == 4
    assert cache.fetch(repo.url, "main") == second  # without `since`: always
    assert cache.fetches == 5
    assert cache.resolve(repo.url, "main") == second
    assert cache.resolve(repo.url, "no-such-branch") is None

    old = cache.tree_ids(repo.url, first, ["a", "b", "."])
    new = cache.tree_ids(repo.url, second, ["a", "./b/", ".", "nowhere", "a/x.yaml", "/etc"])
    assert new["a"] and new["a"] != old["a"]  # changed under a
    assert new["./b/"] == old["b"]  # the same directory, however it is spelt
    assert new["."] and new["."] != old["."]
    assert new["nowhere"] is None and new["a/x.yaml"] is None and new["/etc"] is None


def test_a_failed_fetch_answers_the_callers_waiting_for_it(tmp_path: Path) -> None:
    """An unreachable repository: the callers queued behind a failing fetch get its error
    instead of each waiting out the same failure again; a retry after it tries again."""
    cache = GitCache(tmp_path / "cache")
    url = f"file://{tmp_path / 'missing.git'}"
    asked = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(cache.fetch, url, "main", None, asked) for _ in range(8)]
        errors = {str(f.exception()) for f in futures}
    assert len(errors) == 1 and "does not appear to be a git repository" in errors.pop()
    assert cache.fetches < 8
    before = cache.fetches
    with pytest.raises(FetchError):  # a retry with the same request tries again
        cache.fetch(url, "main", since=asked)
    assert cache.fetches == before + 1
