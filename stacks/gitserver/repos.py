"""Repository names and the bare repositories under the data directory.

`app.py` maps URLs to repositories through `RepoStore`, and creates them for the
`POST /api/repos` API and on a first push. Names are validated here, once, so that no
request can reach a path outside the data directory. Repositories are plain bare git
repositories (`<data-dir>/<name>.git`), created with the git CLI, which also serves them.

Each repository's default branch (its HEAD, `main`) cannot be deleted
(`receive.denyDeleteCurrent`, and the hook below), and accepts fast-forwards only unless
the store is made with `protect_default_branch=False` (`--allow-force-push`): an `update`
hook in `<data-dir>/.platform-hooks/`, which every
repository points at with `core.hooksPath`, refuses the update with a message the git
client shows. The hook and the setting are written again at every start, so existing
repositories follow the current setting.
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

# One path segment: letters, digits, '.', '_', '-'; not starting with '.' or '-'; a name
# is one segment, or two (`tenants/alice`: a folder of repositories, issue 19).
_SEGMENT = r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}"
_NAME = re.compile(rf"(?:{_SEGMENT}/)?{_SEGMENT}")

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


HOOKS_DIR = ".platform-hooks"  # a leading dot: never a valid repository name

# git runs this for each ref a push updates, with the quarantined objects visible, before
# any ref changes: a non-zero exit refuses that ref, and stderr reaches the client as
# "remote: ..." lines.
UPDATE_HOOK = """#!/bin/sh
# Written by the platform git server (stacks/gitserver/repos.py) at every start.
# Refuses non-fast-forward updates and deletion of the repository's default branch.
ref="$1" old="$2" new="$3"
head=$(git symbolic-ref -q HEAD) || exit 0
[ "$ref" = "$head" ] || exit 0
branch=${head#refs/heads/}
case "$new" in
  *[!0]*) ;;
  *) echo "error: the default branch '$branch' cannot be deleted on this server" >&2
     exit 1 ;;
esac
case "$old" in
  *[!0]*) ;;
  *) exit 0 ;;
esac
if ! git merge-base --is-ancestor "$old" "$new" 2>/dev/null; then
  echo "error: force-push to the default branch '$branch' is refused on this server:" \
       "it accepts fast-forwards only. Fetch, rebase or merge, and push again" \
       "(the server's --allow-force-push allows it)" >&2
  exit 1
fi
exit 0
"""


class InvalidRepoName(PermanentError):
    """The name is not one path segment of safe characters."""


def normalise_name(raw: str) -> str:
    """`gitops`, `gitops.git` -> `gitops`; raises InvalidRepoName for anything unsafe.

    Rejects empty names, separators, `..`, leading dots or dashes, and control or
    non-ASCII characters: a valid name is always exactly one directory under the data dir.
    """
    name = raw[:-4] if raw.endswith(".git") else raw
    if (
        not _NAME.fullmatch(name)
        or ".." in name
        or any(part.endswith(".") or part.endswith(".git") for part in name.split("/"))
    ):
        raise InvalidRepoName(
            f"invalid repository name {trim(raw, 60)!r}",
            hint="use letters, digits, '.', '_' and '-' (at most 100), e.g. 'gitops'",
        )
    return name


class RepoStore:
    """The bare repositories in `root`, one `<name>.git` directory each."""

    def __init__(self, root: Path, git: str = "git", protect_default_branch: bool = True) -> None:
        self.root = root
        self.git = git
        self.protect_default_branch = protect_default_branch
        self._create_lock = threading.Lock()

    def ensure_root(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self._install_hook()
        except OSError as error:
            raise PermanentError(
                f"cannot create the data directory {self.root}: {error.strerror}",
                hint="pass --data-dir with a writable directory (in the cluster: the PVC mount)",
            ) from error

    def _install_hook(self) -> None:
        hook = self.root / HOOKS_DIR / "update"
        hook.parent.mkdir(exist_ok=True)
        staged = hook.with_suffix(".tmp")
        staged.write_text(UPDATE_HOOK)
        staged.chmod(0o755)
        os.replace(staged, hook)  # never a half-written hook

    def path(self, name: str) -> Path:
        """The directory of repository `name` (validated); it may not exist yet."""
        return self.root / f"{normalise_name(name)}.git"

    def exists(self, name: str) -> bool:
        return (self.path(name) / "HEAD").is_file()

    def names(self) -> list[str]:
        found = []
        for entry in sorted([*self.root.glob("*.git"), *self.root.glob("*/*.git")]):
            name = entry.relative_to(self.root).as_posix()[:-4]
            if not name.startswith(".") and (entry / "HEAD").is_file():
                found.append(name)
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
                self._configure(str(staging))
                target.parent.mkdir(exist_ok=True)
                os.rename(staging, target)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        log.info("created repository '%s'", target.name[:-4])
        return True

    def delete(self, name: str) -> bool:
        """Delete repository `name` (tenant removal); False when it did not exist. Renamed
        away first, so no request sees it half deleted."""
        target = self.path(name)
        with self._create_lock:
            if not self.exists(name):
                return False
            doomed = Path(tempfile.mkdtemp(prefix=".delete-", dir=self.root))
            os.rename(target, doomed / "repo")
        shutil.rmtree(doomed, ignore_errors=True)
        log.info("deleted repository '%s'", normalise_name(name))
        return True

    def configure_all(self) -> None:
        """Give every existing repository the current REPO_CONFIG (run at start)."""
        for name in self.names():
            self._configure(str(self.path(name)))

    def _configure(self, git_dir: str) -> None:
        for key, value in REPO_CONFIG:
            self._run("--git-dir", git_dir, "config", key, value)
        if self.protect_default_branch:
            hooks = self.root / HOOKS_DIR
            if not (hooks / "update").is_file():  # a store used without ensure_root()
                self._install_hook()
            self._run("--git-dir", git_dir, "config", "core.hooksPath", str(hooks))
        else:  # exit code 5: it was not set
            self._run("--git-dir", git_dir, "config", "--unset", "core.hooksPath", ok=(0, 5))

    def _run(self, *args: str, ok: tuple[int, ...] = (0,)) -> None:
        try:
            result = subprocess.run(
                [self.git, *args],
                check=False,
                capture_output=True,
                text=True,
                timeout=60,
                env=git_environment(),
            )
            if result.returncode not in ok:
                raise subprocess.CalledProcessError(
                    result.returncode, args, result.stdout, result.stderr
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
