"""Pinned helper tools the platform can install for the user into ~/.platform/bin.

Called by `platform doctor --install` (and its interactive offer) when k3d is missing.
Offline, the download fails fast with a sentence saying what to install by hand.
"""

from __future__ import annotations

import platform as python_platform
import urllib.error
import urllib.request
from pathlib import Path

from bootstrap.state import write_atomic
from stacks.errors import PermanentError

K3D_VERSION = "v5.9.0"
DOWNLOAD_TIMEOUT = 15.0


def tools_dir() -> Path:
    return Path.home() / ".platform" / "bin"


def _arch() -> str:
    machine = python_platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def k3d_url() -> str:
    system = python_platform.system().lower()
    return f"https://github.com/k3d-io/k3d/releases/download/{K3D_VERSION}/k3d-{system}-{_arch()}"


def install_k3d(destination: Path | None = None) -> Path:
    """Download the pinned k3d release to ~/.platform/bin/k3d (atomically, 0755)."""
    target = (destination or tools_dir()) / "k3d"
    url = k3d_url()
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response:  # noqa: S310 - fixed https URL
            data = response.read()
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise PermanentError(
            f"could not download k3d {K3D_VERSION} from {url}: {reason}",
            hint=(
                f"this machine seems offline; copy a k3d {K3D_VERSION} binary for "
                f"{python_platform.system()}/{_arch()} to {target} (chmod +x), or install k3d from https://k3d.io"
            ),
        ) from error
    if len(data) < 1_000_000:
        raise PermanentError(
            f"the download from {url} is too small to be k3d ({len(data)} bytes)",
            hint=f"install k3d {K3D_VERSION} by hand from https://k3d.io",
        )
    write_atomic(target, data, mode=0o755)
    return target
