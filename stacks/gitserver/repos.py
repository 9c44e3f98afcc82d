"""Repository names and the bare repositories under the data directory.

`app.py` maps URLs to repositories through `RepoStore`, and creates them for the
`POST /api/repos` API and on a first push. Names are validated here, once, so that no
request can reach a path outside the data directory. Repositories are plain bare git
repositories (`<data-dir>/<name>.git`), created with the git CLI, which also serves them.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

from stacks.errors import PermanentError, TransientError, trim

log = logging.getLogger("platform.gitserver.repos")

# One path segment: letters, digits, '.', '_', '-'; not starting with '.' or '-'.
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}")

DEFAULT_BRANCH = "main"

# Settings every repository gets: reflogs in bare repos (nothing is ever lost without a
# trace), receive-pack over HTTP for authenticated users, no deleting the default
# branch, partial clone filters, and pushed packs kept as packs (unpackLimit 1) rather
# than exploded into one loose file per object; `git gc --auto`, which receive-pack runs
# after each push, consolidates them. (The bench shows no timing difference either way.)
REPO_CONFIG: tuple[tuple[str, str], ...] = (
    ("core.logAllRefUpdates", "always"),
    ("http.receivepack", "true"),
    ("receive.denyDeleteCurrent", "true"),
    ("receive.unpackLimit", "1"),
    ("uploadpack.allowFilter", "true"),
)


class InvalidRepoName(PermanentError):
    """The name is not one path segment of safe characters."""


def normalise_name(raw: str) -> str:
    """`gitops`, `gitops.git` -> `gitops`; raises InvalidRepoName for anything unsafe.

    Rejects empty names, separators, `..`, leading dots or dashes, and control or
    non-ASCII characters: a valid name is always exactly one directory under the data dir.
    """
    name = raw[:-4] if raw.endswith(".git") else raw
    if not _NAME.fullmatch(name) or ".." in name or name.endswith("."):
        raise InvalidRepoName(
            f"invalid repository name {trim(raw, 60)!r}",
            hint="use letters, digits, '.', '_' and '-' (at most 100), e.g. 'gitops'",
        )
    return name


class RepoStore:
    """The bare repositories in `root`, one `<name>.git` directory each."""

    def __init__(self, root: Path, git: str = "git") -> None:
        self.root = root
        self.git = git
        self._create_lock = threading.Lock()

    def ensure_root(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise PermanentError(
                f"cannot create the data directory {self.root}: {error.strerror}",
                hint="pass --data-dir with a writable directory (in the cluster: the PVC mount)",
            ) from error

    def path(self, name: str) -> Path:
        """The directory of repository `name` (validated); it may not exist yet."""
        return self.root / f"{normalise_name(name)}.git"

    def exists(self, name: str) -> bool:
        return (self.path(name) / "HEAD").is_file()

    def names(self) -> list[str]:
        found = []
        for entry in sorted(self.root.glob("*.git")):
            if (entry / "HEAD").is_file():
                found.append(entry.name[:-4])
        return found

    def create(self, name: str) -> bool:
        """Create the bare repository `name`; False when it already existed.

        Built in a temporary directory and renamed into place, so a crash never leaves
        a half-initialised repository under a valid name.
        """
        target = self.path(name)
        with self._create_lock:
            if self.exists(name):
                return False
            staging = Path(tempfile.mkdtemp(prefix=f".create-{target.name}-", dir=self.root))
            try:
                self._run("init", "--bare", "--quiet", "-b", DEFAULT_BRANCH, str(staging))
                for key, value in REPO_CONFIG:
                    self._run("--git-dir", str(staging), "config", key, value)
                os.rename(staging, target)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        log.info("created repository '%s'", target.name[:-4])
        return True

    def configure_all(self) -> None:
        """Give every existing repository the current REPO_CONFIG (run at start)."""
        for name in self.names():
            git_dir = str(self.path(name))
            for key, value in REPO_CONFIG:
                self._run("--git-dir", git_dir, "config", key, value)

    def _run(self, *args: str) -> None:
        try:
            subprocess.run(
                [self.git, *args],
                check=True,
                capture_output=True,
                text=True,
                timeout=60,
                env=git_environment(),
            )
        except subprocess.CalledProcessError as error:
            raise TransientError(
                f"failed to set up repository: `git {' '.join(args)}` exited {error.returncode}: "
                f"{trim(error.stderr or '', 200)}"
            ) from error
        except (OSError, subprocess.TimeoutExpired) as error:
            raise TransientError(f"failed to set up repository: {error}") from error


def git_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for every git process: no user or system config leaks in."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),  # noqa: S108 - git wants some HOME
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "LANG": "C",
        "LC_ALL": "C",
    }
    if extra:
        env.update(extra)
    return env
