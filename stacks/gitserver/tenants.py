"""Git users committed to a repository this server holds: the workshop tenants' logins.

`platform tenant add NAME` commits `tenants/git-users.yaml` to the GitOps repository:

    users:
      alice: {passwordHash: "pbkdf2-sha256$...", access: write, repos: [tenants/alice]}

so a tenant's login is delivered by a commit like everything else, and no password is
ever in git (only its salted PBKDF2 hash, auth.hash_password). `RepoUsers` reads that
file from the repository's HEAD (`--repo-users gitops:tenants/git-users.yaml`), again
whenever the repository's refs change (a push): a new tenant can push a second after
`tenant add` returns. Its users must have hashed passwords and name their repositories,
all under `tenants/`; they never shadow a user of the credentials file, so a committed
file cannot take over `admin` or reach the GitOps repository itself.

A file that does not parse is logged and the last good one kept. Used by program.py,
which hands `RepoUsers.current` to auth.CredentialStore.
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
import time

from stacks.errors import PermanentError
from stacks.gitserver.auth import Credentials, parse_credentials
from stacks.gitserver.repos import RepoStore, git_environment

log = logging.getLogger("platform.gitserver.tenants")

TENANT_PREFIX = "tenants/"
MAX_FILE = 1024 * 1024  # a users file is a few KB; never read an unbounded blob


def parse_spec(text: str) -> tuple[str, str]:
    """`REPO:PATH` -> (repo, path)."""
    repo, sep, path = text.partition(":")
    if not sep or not repo or not path:
        raise PermanentError(
            f"--repo-users {text!r} is not REPO:PATH",
            hint="for example --repo-users gitops:tenants/git-users.yaml",
        )
    return repo, path.strip("/")


class RepoUsers:
    def __init__(
        self, store: RepoStore, repo: str, path: str, git: str = "git", check_interval: float = 1.0
    ) -> None:
        self._store = store
        self._repo = repo
        self._path = path
        self._git_binary = git
        self._check_interval = check_interval
        self._lock = threading.Lock()
        self._checked = -check_interval
        self._stamp: tuple[int, ...] | None = None
        self._credentials: Credentials | None = None

    def _refs_stamp(self) -> tuple[int, ...]:
        """Changes whenever a push moves a ref (loose ref files or packed-refs)."""
        root = self._store.path(self._repo)
        stamp: list[int] = []
        for name in ("packed-refs", "refs/heads", "HEAD"):
            try:
                stat = os.stat(root / name)
                stamp += [stat.st_mtime_ns, stat.st_ino, stat.st_size]
            except OSError:
                stamp += [0, 0, 0]
        heads = root / "refs" / "heads"
        if heads.is_dir():
            for entry in sorted(heads.iterdir()):
                stat = entry.stat()
                stamp += [stat.st_mtime_ns, stat.st_ino]
        return tuple(stamp)

    def current(self) -> Credentials | None:
        now = time.monotonic()
        if now - self._checked < self._check_interval:
            return self._credentials
        with self._lock:
            self._checked = now
            try:
                stamp = self._refs_stamp()
            except OSError:
                return self._credentials
            if stamp != self._stamp:
                self._stamp = stamp
                self._reload()
            return self._credentials

    def _reload(self) -> None:
        source = f"{self._repo}:{self._path}"
        try:
            text = self._read()
            if text is None:
                self._credentials = None  # no file (yet, or any more): no tenant users
                return
            self._credentials = parse_credentials(
                text, source=source, hashed_only=True, repos_under=TENANT_PREFIX
            )
            log.info("loaded %d tenant user(s) from %s", len(self._credentials.entries), source)
        except PermanentError as error:
            log.warning(
                "failed to load tenant users from %s: %s (kept the last good)", source, error
            )

    def _git(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        try:
            return subprocess.run(
                [self._git_binary, "--git-dir", str(self._store.path(self._repo)), *args],
                capture_output=True,
                timeout=30,
                check=False,
                env=git_environment(),
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise PermanentError(f"git cat-file failed: {error}") from error

    def _read(self) -> str | None:
        """The file at HEAD; None when there is none. Its size is asked first, so an
        oversized commit is refused before a byte of it is read into memory."""
        if not self._store.exists(self._repo):
            return None
        blob = f"HEAD:{self._path}"
        size = self._git("cat-file", "-s", blob)
        if size.returncode != 0:
            return None  # no such path at HEAD (or no HEAD yet)
        if int(size.stdout.strip() or b"0") > MAX_FILE:
            raise PermanentError(
                f"the file is {int(size.stdout.strip())} bytes, more than {MAX_FILE} allowed"
            )
        result = self._git("cat-file", "blob", blob)
        if result.returncode != 0:
            raise PermanentError(f"git cat-file exited {result.returncode}")
        return result.stdout.decode("utf-8", errors="replace")
