"""Fetch a revision of a git repository into a local cache, and read files from it.

One bare repository per repoURL under the cache directory; `fetch()` updates it with
`git fetch` and resolves the target revision (HEAD, a branch, a tag or a commit) to a
commit SHA. Files are read straight from git objects (`ls-tree` + `cat-file --batch`),
so there is no checkout to go stale and two apps on one repo never interfere.

Fetches of one repository are coalesced: a caller says since when its answer must be
fresh (`since`, a time.monotonic() value: when the push or refresh that asked for it
arrived), and a fetch that started at or after that moment serves it, so a push that
queues 100 Applications of one repository costs one `git fetch`, not 100 in a row
under the repository's lock. Freshness is kept per set of credentials, so a fetch made
with one Application's credentials never stands in for another's. `fetches` counts
the `git fetch` runs (the reconciler's metrics export it). Reads by commit SHA take no
lock: a fetch only adds objects (gc.auto=0), so a read never sees one half-written.
`tree_ids()` gives the tree object id of paths at commits in one `git cat-file` run: an
unchanged id means the files under that path are byte for byte the same. `prefetch()`
reads the files of many paths in one `ls-tree` and one `cat-file --batch` (a push that
changes 100 Applications' paths), and `files()` hands each its part.

Credentials come from a Secret (keys `username`, `password`) or from a git-credentials
file (`https://user:password@host/` per line). They reach git through the environment
as an `http.extraHeader` (never argv, never a log line, never a message: error text is
scrubbed of them and of any userinfo in URLs).

Called by the reconciler's controller and by `platform diff`.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import subprocess
import tarfile
import threading
import time
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from stacks.errors import PermanentError, TransientError, trim
from stacks.reconciler.render import (
    LIMITS,
    Limits,
    RenderError,
    RenderProblem,
    input_problem,
    too_many_files,
)

log = logging.getLogger(__name__)

_SHA = re.compile(r"^[0-9a-f]{40}$")
FETCH_TIMEOUT = 60.0
# What prefetch() may hold for reads not yet asked for (a push's files, not a clone).
PREFETCH_BYTES = 16 * 1024 * 1024
PREFETCH_PATHS = 500  # paths per `git ls-tree` run
MAX_PATH = 1024  # bytes; git itself has no bound, argv and status fields do
MAX_LISTED = 10_000  # names() of one directory
_SYMLINK = b"120000"
_PATH_HINT = (
    "set spec.source.path to a directory relative to the repository root, such as 'apps/web'"
)


def clean_path(path: str) -> str:
    """`source.path` as git names it ("." for the root), as Argo CD reads it.

    `./apps`, `apps/` and `.` are the same directory as `apps` and the root; an absolute
    path or one that climbs out with `..` is refused rather than rewritten, because
    quietly delivering `etc` for `/etc` delivers something nobody asked for.
    """
    shown = trim(repr(path), 80)
    if "\0" in path or any(ord(c) < 32 for c in path):
        raise PermanentError(
            f"spec.source.path {shown} contains a control character", hint=_PATH_HINT
        )
    if len(path.encode()) > MAX_PATH:
        raise PermanentError(
            f"spec.source.path is {len(path.encode())} bytes long, over the {MAX_PATH}-byte limit",
            hint=_PATH_HINT,
        )
    if path.startswith("/"):
        raise PermanentError(
            f"spec.source.path {shown} is absolute; a path is relative to the repository root",
            hint=_PATH_HINT,
        )
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise PermanentError(
                    f"spec.source.path {shown} leaves the repository: '..' climbs above its root",
                    hint=_PATH_HINT,
                )
            parts.pop()
            continue
        parts.append(part)
    return "/".join(parts) or "."


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def __repr__(self) -> str:  # never print a password, even in a debugger
        return f"Credentials(username={self.username!r}, password=***)"


@dataclass(frozen=True)
class SourceFile:
    path: str  # relative to the repository root
    content: bytes


class FetchError(TransientError):
    """The repository could not be reached or read (retry with backoff)."""


class RevisionNotFound(PermanentError):
    """The target revision does not exist in the repository."""


def redact_url(url: str) -> str:
    """The URL without any user:password@ part."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def read_credentials_file(path: Path, repo_url: str) -> Credentials | None:
    """The credentials for `repo_url` from a git-credentials file (longest URL prefix wins)."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return None  # an optional Secret that is not there: no credentials
    except OSError as error:
        raise PermanentError(
            f"cannot read the git credentials file {path}: {error.strerror}",
            hint="check --git-credentials-file points at a readable file",
        ) from error
    target = urllib.parse.urlsplit(repo_url)
    best: tuple[int, Credentials] | None = None
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = urllib.parse.urlsplit(line)
        if parts.username is None or parts.scheme != target.scheme:
            continue
        if (parts.hostname, parts.port) != (target.hostname, target.port):
            continue
        prefix = parts.path.rstrip("/")
        if prefix and not target.path.startswith(prefix):
            continue
        creds = Credentials(
            urllib.parse.unquote(parts.username), urllib.parse.unquote(parts.password or "")
        )
        if best is None or len(prefix) > best[0]:
            best = (len(prefix), creds)
    return best[1] if best else None


class GitCache:
    """Bare repositories under `root`, one per repoURL; thread-safe per repository."""

    def __init__(self, root: Path, git: str = "git") -> None:
        self.root = root
        self.git = git
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        # (url, credentials digest, with remote HEAD) -> monotonic start of the last
        # successful fetch: what `since` is compared with.
        self._fetched: dict[tuple[str, str, bool], float] = {}
        self._failed: dict[tuple[str, str, bool], tuple[float, float, str]] = {}
        self._trees: dict[tuple[str, str, str], str | None] = {}  # (url, sha, path) -> tree
        self.fetches = 0  # `git fetch` runs, for the metrics
        # (url, tree id, recurse, limits) -> files read ahead by prefetch(), until asked for
        self._prefetched: dict[tuple[str, str, bool, Limits], list[SourceFile]] = {}
        self._prefetched_bytes = 0
        root.mkdir(parents=True, exist_ok=True)

    def _lock(self, url: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(url, threading.Lock())

    def repo_dir(self, url: str) -> Path:
        digest = hashlib.sha256(url.encode()).hexdigest()[:16]
        tail = re.sub(r"[^A-Za-z0-9._-]", "_", url.rstrip("/").rsplit("/", 1)[-1])[:40]
        return self.root / f"{tail}-{digest}.git"

    def _env(self, creds: Credentials | None) -> dict[str, str]:
        env = {
            k: v for k, v in os.environ.items() if not k.startswith("GIT_") or k == "GIT_SSL_CAINFO"
        }
        env.update(
            {
                "GIT_TERMINAL_PROMPT": "0",
                "GIT_ASKPASS": "/bin/false",
                "GIT_CONFIG_NOSYSTEM": "1",
                "GIT_CONFIG_GLOBAL": "/dev/null",
                "LC_ALL": "C",
            }
        )
        config = [("gc.auto", "0"), ("protocol.version", "2")]
        if creds is not None:
            token = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
            config.append(("http.extraHeader", f"Authorization: Basic {token}"))
        env["GIT_CONFIG_COUNT"] = str(len(config))
        for i, (key, value) in enumerate(config):
            env[f"GIT_CONFIG_KEY_{i}"] = key
            env[f"GIT_CONFIG_VALUE_{i}"] = value
        return env

    def _run(
        self,
        args: list[str],
        cwd: Path,
        creds: Credentials | None,
        secrets: tuple[str, ...] = (),
        timeout: float = FETCH_TIMEOUT,
        stdin: bytes | None = None,
    ) -> bytes:
        try:
            result = subprocess.run(
                [self.git, *args],
                cwd=cwd,
                env=self._env(creds),
                input=stdin,
                capture_output=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as error:
            raise FetchError(f"git {args[0]} timed out after {timeout:.0f}s") from error
        if result.returncode != 0:
            text = result.stderr.decode(errors="replace")
            for secret in secrets:
                if secret:
                    text = text.replace(secret, "***")
            text = re.sub(r"://[^/@\s]+@", "://", text)
            raise FetchError(
                f"git {args[0]} failed: {trim(text, 400) or f'exit {result.returncode}'}"
            )
        return result.stdout

    def fetch(
        self,
        url: str,
        revision: str,
        creds: Credentials | None = None,
        since: float | None = None,
    ) -> str:
        """Update the cache from `url` and return the commit SHA of `revision`.

        With `since` (a time.monotonic() value), a fetch of `url` with the same
        credentials that started at or after it is fresh enough and is not repeated;
        callers waiting on the lock behind a running fetch are served by the next one.
        Without it the fetch always runs.
        """
        secrets = (creds.password,) if creds else ()
        want = revision.strip() or "HEAD"
        entered = time.monotonic()
        with self._lock(url):
            repo = self.repo_dir(url)
            if not (repo / "HEAD").exists():
                tmp = repo.with_suffix(f".tmp{os.getpid()}")
                self._run(["init", "--bare", "-q", str(tmp)], self.root, None)
                os.replace(tmp, repo)
            who = _creds_digest(creds)
            # A fetch without the remote HEAD refspec cannot answer for HEAD.
            fresh = max(
                self._fetched.get((url, who, True), -1.0),
                -1.0 if want == "HEAD" else self._fetched.get((url, who, False), -1.0),
            )
            failed = self._failed.get((url, who, want == "HEAD"))
            if (
                since is not None
                and fresh < since
                and failed is not None
                and failed[0] >= since
                and entered <= failed[1]
            ):
                # This caller was waiting behind a fetch that would have served it, and
                # that fetch failed: its answer stands, rather than N callers each waiting
                # out the same timeout. A caller that comes later (a retry) tries again.
                raise FetchError(failed[2])
            if since is None or fresh < since:
                self._fetch_now(url, repo, want == "HEAD", creds, secrets)
            found = self._rev_parse(repo, want)
            if found is not None:
                return found
            if _SHA.match(want):
                self._count_fetch()
                self._run(
                    ["fetch", "--quiet", "--no-write-fetch-head", url, want], repo, creds, secrets
                )
                return want
            raise RevisionNotFound(
                f"revision {want!r} does not exist in {redact_url(url)}",
                hint="set spec.source.targetRevision to a branch, tag or commit of the repository",
            )

    def _fetch_now(
        self,
        url: str,
        repo: Path,
        head: bool,
        creds: Credentials | None,
        secrets: tuple[str, ...],
    ) -> None:
        """One `git fetch` of branches and tags (and the remote HEAD); the lock is held."""
        refspecs = ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"]
        if head:
            refspecs.append("+HEAD:refs/platform/remote-head")
        started = time.monotonic()
        self._count_fetch()
        key = (url, _creds_digest(creds), head)
        try:
            self._run(
                ["fetch", "--quiet", "--prune", "--no-write-fetch-head", url, *refspecs],
                repo,
                creds,
                secrets,
            )
        except FetchError as error:
            # (start, end, message): the message is already scrubbed of secrets.
            self._failed[key] = (started, time.monotonic(), str(error))
            raise
        self._failed.pop(key, None)
        self._fetched[key] = started
        log.debug("fetched %s in %.0f ms", redact_url(url), (time.monotonic() - started) * 1000)

    def _count_fetch(self) -> None:
        with self._guard:
            self.fetches += 1

    def tree_ids(self, url: str, sha: str, paths: list[str]) -> dict[str, str | None]:
        """The tree object id of each path at commit `sha` (None: not a directory there).

        Remembered per (url, sha, path), since a commit never changes; the ones not yet
        known are asked in one `git cat-file --batch-check` run. A path that is not a
        clean relative path is None here; the reconcile reports why.
        """
        answer: dict[str, str | None] = {}
        ask: list[tuple[str, str]] = []
        for path in paths:
            known = self._trees.get((url, sha, path), "")
            if known != "":
                answer[path] = known
                continue
            try:
                clean = clean_path(path)
            except PermanentError:
                answer[path] = None
                continue
            ask.append((path, f"{sha}^{{tree}}" if clean == "." else f"{sha}:{clean}"))
        if ask:
            out = self._run(
                ["cat-file", "--batch-check=%(objectname) %(objecttype)"],
                self.repo_dir(url),
                None,
                timeout=30,
                stdin="".join(f"{spec}\n" for _, spec in ask).encode(),
            )
            lines = out.decode(errors="replace").splitlines()
            if len(lines) != len(ask):
                raise FetchError(f"git cat-file answered {len(lines)} lines for {len(ask)} paths")
            if len(self._trees) > 50_000:  # bounded: old commits are rarely asked again
                self._trees.clear()
            for (path, _), line in zip(ask, lines, strict=True):
                parts = line.split()
                tree = parts[0] if len(parts) == 2 and parts[1] == "tree" else None
                self._trees[(url, sha, path)] = tree
                answer[path] = tree
        return answer

    def resolve(self, url: str, revision: str) -> str | None:
        """The commit `revision` names in the cache as it is now, without fetching."""
        repo = self.repo_dir(url)
        if not (repo / "HEAD").exists():
            return None
        return self._rev_parse(repo, revision.strip() or "HEAD")

    def _rev_parse(self, repo: Path, want: str) -> str | None:
        candidates = (
            ["refs/platform/remote-head"]
            if want == "HEAD"
            else [want, f"refs/heads/{want}", f"refs/tags/{want}"]
            if not want.startswith("refs/")
            else [want]
        )
        for ref in candidates:
            try:
                out = self._run(
                    ["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], repo, None
                )
            except FetchError:
                continue
            return out.decode().strip()
        return None

    def files(
        self,
        url: str,
        sha: str,
        path: str,
        recurse: bool,
        limits: Limits = LIMITS,
        tree: str | None = None,
    ) -> list[SourceFile] | None:
        """YAML/JSON files under `path` at commit `sha`; None if `path` does not exist.

        Sizes come from the listing, so a file over the render's bounds is refused before
        its bytes are read (RenderError naming it), and so is a symlink: git stores its
        target as the blob, and following it could leave the repository. `tree`, the
        path's tree id from `tree_ids()` when the caller has it, saves asking git again,
        and finds what `prefetch()` read for it.
        """
        if tree is not None:
            with self._guard:
                ready = self._prefetched.pop((url, tree, recurse, limits), None)
                if ready is not None:
                    self._prefetched_bytes -= sum(len(f.content) for f in ready)
            if ready is not None:
                return ready
        repo = self.repo_dir(url)
        prefix = "" if path in ("", ".") else clean_path(path)
        # No lock: objects read by SHA are immutable (see the module docstring).
        if prefix and tree is None:
            try:
                kind = self._run(["cat-file", "-t", f"{sha}:{prefix}"], repo, None, timeout=30)
            except FetchError:
                return None
            if kind.strip() != b"tree":
                return None
        args = ["ls-tree", "-z", "-l", "--full-tree"]
        if recurse:
            args.append("-r")
        args.append(tree if tree is not None else f"{sha}:{prefix}" if prefix else sha)
        listing = self._run(args, repo, None, timeout=30)
        records = [r.split(b"\t", 1) for r in listing.split(b"\0") if r]
        entries = _entries(
            ((info, name.decode(errors="replace")) for info, name in records), prefix, limits
        )
        if not entries:
            return []
        return self._read_blobs(
            repo, {obj for _, obj, _ in entries}, [(n, o) for n, o, _ in entries]
        )

    def prefetch(
        self,
        url: str,
        sha: str,
        wanted: list[tuple[str, str, bool]],
        limits: Limits = LIMITS,
    ) -> None:
        """Read the files of many paths at commit `sha` in two git runs, for the next
        `files(..., tree=...)` of each: a push that changes 100 Applications' paths
        costs two runs, not two per Application.

        `wanted` holds (path, tree id, recurse). A path whose listing breaks a bound is
        left out (its own `files()` call reports it), and so is the repository root;
        what is read is kept until asked for, up to PREFETCH_BYTES in all.
        """
        jobs: list[tuple[str, str, bool]] = []
        for path, tree, recurse in wanted:
            try:
                if path not in ("", "."):
                    jobs.append((clean_path(path), tree, recurse))
            except PermanentError:
                continue  # its own reconcile says why
        if len(jobs) < 2:
            return
        repo = self.repo_dir(url)
        prefixes = sorted({p for p, _, _ in jobs})
        named: list[tuple[bytes, str]] = []
        for start in range(0, len(prefixes), PREFETCH_PATHS):  # argv stays short
            listing = self._run(
                [
                    "ls-tree",
                    "-r",
                    "-z",
                    "-l",
                    "--full-tree",
                    sha,
                    "--",
                    *prefixes[start : start + PREFETCH_PATHS],
                ],
                repo,
                None,
                timeout=30,
            )
            for record in listing.split(b"\0"):
                if record:
                    info, raw_name = record.split(b"\t", 1)
                    named.append((info, raw_name.decode(errors="replace")))
        # Each file under every wanted directory that holds it, walking up its parents
        # (one dict look-up per level, not one comparison per wanted path).
        under: dict[str, list[tuple[bytes, str]]] = {p: [] for p in prefixes}
        for info, name in named:
            parent = name
            while "/" in parent:
                parent = parent.rsplit("/", 1)[0]
                if parent in under:
                    under[parent].append((info, name[len(parent) + 1 :]))
        planned: list[tuple[tuple[str, str, bool, Limits], list[tuple[str, str]]]] = []
        blobs: set[str] = set()
        size = 0  # counted per path, as files() gives it back
        for prefix, tree, recurse in jobs:
            below = [(info, rel) for info, rel in under[prefix] if recurse or "/" not in rel]
            try:
                entries = _entries(below, prefix, limits)
            except RenderError:
                continue
            size += sum(length for _, _, length in entries)
            if size > PREFETCH_BYTES:
                break
            blobs.update(obj for _, obj, _ in entries)
            planned.append(((url, tree, recurse, limits), [(n, o) for n, o, _ in entries]))
        if not blobs:
            return
        contents = {
            f.path: f.content
            for f in self._read_blobs(repo, blobs, [(o, o) for o in sorted(blobs)])
        }
        with self._guard:
            if self._prefetched_bytes + size > PREFETCH_BYTES:  # nobody asked for the last
                self._prefetched.clear()
                self._prefetched_bytes = 0
            for key, names in planned:
                self._prefetched[key] = [SourceFile(name, contents[obj]) for name, obj in names]
            self._prefetched_bytes += size

    def _read_blobs(
        self, repo: Path, blobs: set[str], names: list[tuple[str, str]]
    ) -> list[SourceFile]:
        """The content of `blobs` in one `cat-file --batch`, as SourceFile per (name, blob)."""
        order = sorted(blobs)
        batch = self._run(
            ["cat-file", "--batch"],
            repo,
            None,
            timeout=30,
            stdin="".join(f"{obj}\n" for obj in order).encode(),
        )
        by_id = {f.path: f.content for f in _split_batch(batch, order)}
        return [SourceFile(name, by_id[obj]) for name, obj in names]

    def names(self, url: str, sha: str, path: str) -> list[str]:
        """The names of the entries directly in directory `path` at `sha` (renderer.py
        looks for kustomization.yaml and Chart.yaml here); [] when it is no directory."""
        prefix = clean_path(path)
        spec = sha if prefix == "." else f"{sha}:{prefix}"
        try:
            listing = self._run(
                ["ls-tree", "-z", "--name-only", spec], self.repo_dir(url), None, timeout=30
            )
        except FetchError:
            return []
        return [n.decode(errors="replace") for n in listing.split(b"\0") if n][:MAX_LISTED]

    def export(self, url: str, sha: str, dest: Path, max_bytes: int, max_files: int) -> None:
        """Write the whole tree of commit `sha` under `dest` (for helm and kustomize,
        which read files, and may reach any of the repository as `../base`).

        Bounded before a byte is written: the listing's sizes and count must fit
        `max_bytes` and `max_files`, or RenderError says so. The archive is streamed into
        tarfile's "data" filter, which refuses links that lead out of `dest`, absolute
        names and device files, so a hostile repository cannot write elsewhere.
        """
        repo = self.repo_dir(url)
        listing = self._run(["ls-tree", "-r", "-z", "-l", sha], repo, None, timeout=30)
        total = count = 0
        for record in listing.split(b"\0"):
            if not record:
                continue
            info = record.split(b"\t", 1)[0].split()
            count += 1
            total += int(info[3]) if len(info) == 4 and info[3].isdigit() else 0
        if count > max_files or total > max_bytes:
            raise RenderError(
                [
                    RenderProblem(
                        redact_url(url),
                        0,
                        f"the repository holds {count} files, {total // 1024} KiB at {sha[:12]}, "
                        f"over the limit of {max_files} files and {max_bytes // (1024 * 1024)} MiB "
                        "that helm and kustomize renders may read; keep charts and "
                        "kustomizations in a smaller repository",
                    )
                ]
            )
        dest.mkdir(parents=True, exist_ok=True)
        process = subprocess.Popen(
            [self.git, "archive", "--format=tar", sha],
            cwd=repo,
            env=self._env(None),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert process.stdout is not None
        try:
            with tarfile.open(fileobj=process.stdout, mode="r|") as archive:
                archive.extractall(dest, filter="data")
        except (tarfile.TarError, OSError) as error:
            raise FetchError(f"cannot write the tree of {sha[:12]}: {error}") from error
        finally:
            process.stdout.close()
            if process.wait(timeout=60) != 0:
                raise FetchError(f"git archive of {sha[:12]} failed")

    def explain_missing(self, url: str, sha: str, path: str) -> str:
        """Why `path` is not a directory at `sha` (a sentence fragment; "" if unknown)."""
        repo = self.repo_dir(url)
        parts = clean_path(path).split("/")
        # No lock, as in files().
        for i in range(len(parts)):
            here = "/".join(parts[: i + 1])
            try:
                out = self._run(["ls-tree", "-z", sha, "--", here], repo, None, timeout=30)
            except FetchError:
                return ""
            if not out:
                return f"'{here}' does not exist" if i else ""
            mode = out.split(b" ", 1)[0]
            if mode == _SYMLINK:
                return (
                    f"'{here}' is a symbolic link, and symlinks are not followed; "
                    "point spec.source.path at the directory itself"
                )
            if mode != b"040000":
                return f"'{here}' is a file, not a directory"
        return ""

    def exists(self, url: str, sha: str, path: str) -> bool:
        try:
            return self.files(url, sha, path, recurse=False) is not None
        except FetchError:
            return False
        except RenderError:  # it exists; what is in it is render's business
            return True


def _entries(
    records: Iterable[tuple[bytes, str]], prefix: str, limits: Limits
) -> list[tuple[str, str, int]]:
    """(path, blob id, size) of the YAML/JSON files in an `ls-tree -l` listing whose
    names are relative to `prefix`, sorted; RenderError for a symlink or a file over
    the render's bounds (checked before a byte is read)."""
    entries: list[tuple[str, str, int]] = []
    for info, rel in records:
        mode, type_, obj, length = info.split()
        if type_ != b"blob" or not rel.endswith((".yaml", ".yml", ".json")):
            continue
        full = f"{prefix}/{rel}" if prefix else rel
        if mode == _SYMLINK:
            raise RenderError(
                [
                    RenderProblem(
                        full,
                        0,
                        "the file is a symbolic link, and symlinks are not followed (they could "
                        "point outside the repository): commit the file itself in its place",
                    )
                ]
            )
        entries.append((full, obj.decode(), int(length)))
    entries.sort()
    total = 0
    for count, (full, _, size) in enumerate(entries, start=1):
        # The same bounds render() applies, before a byte is read.
        total += size
        problem = (
            too_many_files(full, limits)
            if count > limits.files
            else input_problem(full, size, total, limits)
        )
        if problem is not None:
            raise RenderError([problem])
    return entries


def _creds_digest(creds: Credentials | None) -> str:
    """Who a fetch was made as, without keeping the password itself in memory twice."""
    if creds is None:
        return ""
    return hashlib.sha256(f"{creds.username}\0{creds.password}".encode()).hexdigest()


def _split_batch(batch: bytes, names: list[str]) -> list[SourceFile]:
    files = []
    pos = 0
    for name in names:
        header_end = batch.index(b"\n", pos)
        header = batch[pos:header_end].split()
        size = int(header[2])
        start = header_end + 1
        files.append(SourceFile(name, batch[start : start + size]))
        pos = start + size + 1
    return files


def secret_credentials(data: Mapping[str, str]) -> Credentials:
    """Credentials from a Secret's base64 `data` (keys `username` and `password`)."""
    try:
        return Credentials(
            base64.b64decode(data.get("username", "")).decode(),
            base64.b64decode(data.get("password", "")).decode(),
        )
    except (ValueError, UnicodeDecodeError) as error:
        raise PermanentError(
            "the git credentials Secret is not valid base64 text",
            hint="store keys `username` and `password` in the Secret",
        ) from error
