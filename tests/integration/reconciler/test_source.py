"""source.py against real git repositories on disk: revisions, paths, recursion,
credentials files, and error messages that never carry a password."""

from __future__ import annotations

import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from stacks.reconciler.render import Limits, RenderError
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


def test_prefetch_reads_many_paths_in_two_git_runs_with_the_same_answers(
    repo: GitRepo, tmp_path: Path
) -> None:
    for name in ("a", "b", "c"):
        repo.write(f"apps/{name}/cm.yaml", f"kind: {name}\n")
        repo.write(f"apps/{name}/deep/more.yaml", f"kind: {name}-deep\n")
        repo.write(f"apps/{name}/notes.txt", "ignored\n")
    repo.write("apps/b/same.yaml", "kind: a\n")  # the same blob as apps/a/cm.yaml
    repo.write("apps/big/huge.yaml", "x" * 5000)
    sha = repo.commit("three apps")
    (repo.work / "apps" / "c" / "link.yaml").symlink_to("cm.yaml")
    sha_link = repo.commit("a symlink in c")
    plain = GitCache(tmp_path / "plain")
    ahead = GitCache(tmp_path / "ahead")
    for cache in (plain, ahead):
        cache.fetch(repo.url, "main")
    paths = ["apps/a", "apps/a/deep", "apps/b", "apps/c", "apps/big"]  # one inside another
    trees = plain.tree_ids(repo.url, sha, paths)
    ahead.tree_ids(repo.url, sha, paths)
    wanted = [(p, str(trees[p]), p != "apps/a") for p in paths]
    limits = Limits(file_bytes=1000)
    runs: list[list[str]] = []
    run = ahead._run

    def counted(args: list[str], *rest: object, **named: object) -> bytes:
        runs.append(args)
        return run(args, *rest, **named)  # type: ignore[arg-type]

    ahead._run = counted  # type: ignore[method-assign]
    ahead.prefetch(repo.url, sha, wanted, limits)
    assert [r[0] for r in runs] == ["ls-tree", "cat-file"]
    for path, tree, recurse in wanted:
        if path == "apps/big":  # over the bound: not read ahead, and refused as before
            with pytest.raises(RenderError, match=r"huge\.yaml"):
                ahead.files(repo.url, sha, path, recurse, limits, tree=tree)
            continue
        got = ahead.files(repo.url, sha, path, recurse, limits, tree=tree)
        assert got == plain.files(repo.url, sha, path, recurse, limits, tree=tree), path
    assert [r[0] for r in runs] == ["ls-tree", "cat-file", "ls-tree"]  # only apps/big again
    # A symlink found by the read-ahead is refused by that path's own read, as before.
    tree_c = str(ahead.tree_ids(repo.url, sha_link, ["apps/c"])["apps/c"])
    ahead.prefetch(
        repo.url, sha_link, [("apps/a", str(trees["apps/a"]), True), ("apps/c", tree_c, False)]
    )
    with pytest.raises(RenderError, match="symbolic link"):
        ahead.files(repo.url, sha_link, "apps/c", False, tree=tree_c)
