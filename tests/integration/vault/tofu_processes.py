"""Finding the real tofu processes of a `terraform` stage (by their working directory)
and their provider plugins, for the tests that kill them mid-apply."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    argv: tuple[str, ...]


def _all() -> list[Proc]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (entry / "stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()
            if fields[0] == "Z":
                continue
            argv = tuple(a.decode() for a in (entry / "cmdline").read_bytes().split(b"\0") if a)
            found.append(Proc(int(entry.name), int(fields[1]), argv))
    return found


def in_workdir(workdir: Path) -> list[Proc]:
    """Live processes running in `workdir` (tofu and the providers it started there)."""
    target = str(workdir.resolve())
    result = []
    for proc in _all():
        with contextlib.suppress(OSError):
            if Path(f"/proc/{proc.pid}/cwd").readlink() == Path(target):
                result.append(proc)
    return result


def applying_with_provider(workdir: Path) -> tuple[Proc, Proc] | None:
    """(tofu apply, its running provider) once the apply is under way, else None."""
    procs = in_workdir(workdir)
    for tofu in procs:
        if "apply" in tofu.argv[1:2]:
            for child in _all():
                if child.ppid == tofu.pid and "provider" in " ".join(child.argv):
                    return tofu, child
    return None


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
