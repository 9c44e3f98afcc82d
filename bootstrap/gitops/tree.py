"""Reading a directory of the user's (a template, a package) into memory, within bounds.

    files = read_tree(Path("my-template"), "template my-template")   [(PurePosixPath, bytes)]

What lands in the platform's repository must be what the user meant and nothing else: a
symbolic link (which could point at ~/.ssh or out of the tree), a device or a socket is
an error naming the file; `.git/` (a template that is itself a checkout) and editor and
Python litter are skipped. The number of files and their total size are bounded, so a
wrong directory (a home directory, a build tree) fails fast with a sentence instead of
being pushed. Called by the template renderer (repo.py) and the package renderer.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

from stacks.errors import PermanentError

MAX_FILES = 2000
MAX_BYTES = 20 * 1024 * 1024
SKIPPED_DIRS = frozenset({".git", "__pycache__"})
SKIPPED_FILES = frozenset({".DS_Store"})


def read_tree(root: Path, label: str) -> list[tuple[PurePosixPath, bytes]]:
    """Every regular file under `root` (relative POSIX path, content), sorted by path.
    `label` names the tree in errors ("the template ./t", "the package ./app")."""
    found: list[tuple[PurePosixPath, bytes]] = []
    total = 0
    for folder, dirs, names in os.walk(root, followlinks=False):
        base = Path(folder)
        for name in list(dirs):
            if name in SKIPPED_DIRS:
                dirs.remove(name)
            elif (base / name).is_symlink():
                _refuse(root, base / name, label, "is a symbolic link")
        for name in names:
            if name in SKIPPED_FILES:
                continue
            path = base / name
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                _refuse(root, path, label, "is a symbolic link")
            if not stat.S_ISREG(mode):
                _refuse(root, path, label, "is not a regular file")
            total += path.lstat().st_size
            if len(found) >= MAX_FILES or total > MAX_BYTES:
                raise PermanentError(
                    f"{label} is larger than a GitOps repository should be (more than "
                    f"{MAX_FILES} files or {MAX_BYTES // (1024 * 1024)} MiB)",
                    hint="check the path: it should hold manifests, not a whole project",
                )
            found.append((PurePosixPath(path.relative_to(root).as_posix()), path.read_bytes()))
    return sorted(found)


def _refuse(root: Path, path: Path, label: str, why: str) -> None:
    relative = path.relative_to(root).as_posix()
    raise PermanentError(
        f"{label}: {relative} {why}; only regular files are copied into the repository",
        hint="replace it with a copy of the file it stands for, or remove it",
    )
