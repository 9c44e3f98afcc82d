"""The local Terraform state of the `terraform` stage: kept private, kept, and recovered.

tofu's local backend rewrites `terraform.tfstate` in place and creates it empty when it
takes its lock, so a tofu killed at the wrong moment leaves a 0-byte state, a
`.terraform.tfstate.lock.info` and a plan file. This module, called by the `terraform`
stage before every tofu run (under the platform's own lock, so no other `up` is running):

- `secure`: the state, its backups, lock info and plan files hold the secret variables
  (the userpass password, demo secrets, the token-reviewer JWT): 0600, directories 0700;
- `recover`: a lock no live process holds is removed; a live one is named with the fix;
  an empty or unreadable state is replaced by the newest readable copy (tofu's own
  `.backup` or ours), or removed when there is none; a leftover plan file is removed;
- `keep`: before a run that writes the state, an atomic 0600 copy of a good state;
- `managed`: the resource addresses the state holds, so the stage can adopt objects a
  killed apply created but never recorded.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path
from typing import Any

from bootstrap.state import write_atomic
from stacks.errors import PermanentError

STATE = "terraform.tfstate"
TOFU_BACKUP = "terraform.tfstate.backup"
OUR_BACKUP = ".platform-tfstate.backup"
LOCK_INFO = ".terraform.tfstate.lock.info"


def secure(workdir: Path) -> None:
    """0700 directories and 0600 files below the stage's working directory (files made by
    versions before tofu ran with umask 077 were 0644)."""
    for root, dirs, files in os.walk(workdir):
        os.chmod(root, 0o700)
        for name in files:
            path = Path(root) / name
            if not path.is_symlink():
                os.chmod(path, 0o600)
        dirs[:] = [d for d in dirs if not (Path(root) / d).is_symlink()]


def read(path: Path) -> dict[str, Any] | None:
    """A state file's content, or None when it is missing, empty or not a state."""
    try:
        data = json.loads(path.read_bytes() or b"null")
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and "version" in data else None


def managed(workdir: Path) -> set[str]:
    """Addresses (`type.name`) of the managed resources recorded in the state."""
    data = read(workdir / STATE) or {}
    return {
        f"{r.get('type')}.{r.get('name')}"
        for r in data.get("resources") or []
        if r.get("mode") == "managed" and r.get("instances")
    }


def keep(workdir: Path) -> None:
    """Our own copy of a good state, written atomically before tofu rewrites it."""
    state = workdir / STATE
    if read(state) is not None:
        write_atomic(workdir / OUR_BACKUP, state.read_bytes(), mode=0o600)


def recover(workdir: Path, plan_files: tuple[str, ...] = ()) -> list[str]:
    """Undo what a killed tofu left; returns one sentence per repair, for the log."""
    notes: list[str] = []
    _release_stale_lock(workdir, notes)
    state = workdir / STATE
    if state.exists() and read(state) is None:
        candidates = [
            (data.get("serial", 0), path)
            for path in (workdir / TOFU_BACKUP, workdir / OUR_BACKUP)
            if (data := read(path)) is not None
        ]
        if candidates:
            _, best = max(candidates, key=lambda c: c[0])
            write_atomic(state, best.read_bytes(), mode=0o600)
            notes.append(f"{state} was empty or unreadable (a killed run); restored from {best}")
        else:
            state.unlink()
            notes.append(
                f"{state} was empty or unreadable (a killed run) and no copy exists; removed, "
                "objects already in Vault are adopted"
            )
    for name in plan_files:
        if (workdir / name).exists():
            (workdir / name).unlink()
            notes.append(f"removed the plan file {name} left by an earlier run")
    return notes


def _release_stale_lock(workdir: Path, notes: list[str]) -> None:
    info = workdir / LOCK_INFO
    if not info.exists():
        return
    state = workdir / STATE
    if state.exists() and not _lock_is_free(state):
        holders = _processes_in(workdir)
        who = f"pid {', '.join(map(str, holders))}" if holders else "another process"
        how = f"kill {' '.join(map(str, holders))}" if holders else f"see {info}"
        raise PermanentError(
            f"the Terraform state {state} is locked by {who}, a tofu left running by an "
            "earlier `platform up`",
            hint=f"stop it ({how}) and run `platform up` again",
        )
    info.unlink()
    notes.append(f"removed the stale lock {info} (no process held it)")


def _lock_is_free(state: Path) -> bool:
    """tofu locks the state file with a POSIX record lock (fcntl F_SETLK): try the same."""
    try:
        fd = os.open(state, os.O_RDWR)
    except OSError:
        return True
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    else:
        fcntl.lockf(fd, fcntl.LOCK_UN)
        return True
    finally:
        os.close(fd)


def _processes_in(workdir: Path) -> list[int]:
    """Pids whose working directory is `workdir` (tofu runs there)."""
    found = []
    target = str(workdir.resolve())
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.readlink(entry / "cwd") == target:
                    found.append(int(entry.name))
    return sorted(found)
