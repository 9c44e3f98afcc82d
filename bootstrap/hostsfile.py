"""A marked block of the platform's names in the hosts file (/etc/hosts), added and removed
without touching a line anyone else wrote.

    # BEGIN platform local
    127.0.0.1 git.localdev.me vault.localdev.me demo.localdev.me
    # END platform local

Pure text functions plus one atomic write. Called by `platform hosts` and `platform down`.
PLATFORM_HOSTS_FILE points it at another file (tests, or a user without root).
"""

from __future__ import annotations

import os
from pathlib import Path

from bootstrap.state import write_atomic
from stacks.errors import PermanentError

HOST_NAMES = ("git", "vault", "demo")


def hosts_path() -> Path:
    return Path(os.environ.get("PLATFORM_HOSTS_FILE") or "/etc/hosts")


def platform_names(domain: str) -> list[str]:
    return [f"{name}.{domain}" for name in HOST_NAMES]


def block(platform: str, address: str, names: list[str]) -> str:
    return f"# BEGIN platform {platform}\n{address} {' '.join(names)}\n# END platform {platform}\n"


def without_block(text: str, platform: str) -> str:
    """`text` minus this platform's block (other platforms' blocks and lines stay)."""
    begin, end = f"# BEGIN platform {platform}", f"# END platform {platform}"
    kept: list[str] = []
    inside = False
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if stripped == begin:
            inside = True
            continue
        if inside and stripped == end:
            inside = False
            continue
        if not inside:
            kept.append(line)
    return "".join(kept)


def with_block(text: str, platform: str, address: str, names: list[str]) -> str:
    base = without_block(text, platform)
    if base and not base.endswith("\n"):
        base += "\n"
    return base + block(platform, address, names)


def _write(path: Path, text: str) -> None:
    try:
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
        write_atomic(path, text.encode(), mode=mode)
    except PermissionError as error:
        raise PermanentError(
            f"cannot write {path}: permission denied",
            hint="run `sudo platform hosts --write`, or add the printed line to the hosts file yourself",
        ) from error


def install(platform: str, address: str, names: list[str]) -> Path:
    path = hosts_path()
    current = path.read_text() if path.exists() else ""
    _write(path, with_block(current, platform, address, names))
    return path


def uninstall(platform: str) -> bool:
    """Remove the block; True if there was one."""
    path = hosts_path()
    if not path.exists():
        return False
    current = path.read_text()
    cleaned = without_block(current, platform)
    if cleaned == current:
        return False
    _write(path, cleaned)
    return True
