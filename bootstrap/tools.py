"""Pinned helper tools the platform can install for the user into ~/.platform/bin.

k3d (for the default engine) and OpenTofu (for the terraform stage), downloaded from
their official releases when they are missing. Called by `platform doctor --install`
(and its interactive offer) and by the terraform stage. Offline, the download fails
fast with a sentence saying what to install by hand.
"""

from __future__ import annotations

import io
import platform as python_platform
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from bootstrap.state import write_atomic
from stacks.errors import PermanentError

K3D_VERSION = "v5.9.0"
TOFU_VERSION = "1.6.3"
DOWNLOAD_TIMEOUT = 15.0


def tools_dir() -> Path:
    return Path.home() / ".platform" / "bin"


def _arch() -> str:
    machine = python_platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def k3d_url() -> str:
    system = python_platform.system().lower()
    return f"https://github.com/k3d-io/k3d/releases/download/{K3D_VERSION}/k3d-{system}-{_arch()}"


def tofu_url() -> str:
    system = python_platform.system().lower()
    return (
        f"https://github.com/opentofu/opentofu/releases/download/v{TOFU_VERSION}/"
        f"tofu_{TOFU_VERSION}_{system}_{_arch()}.zip"
    )


def _download(tool: str, version: str, url: str, target: Path, home: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response:  # noqa: S310 - fixed https URL
            data: bytes = response.read()
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise PermanentError(
            f"could not download {tool} {version} from {url}: {reason}",
            hint=(
                f"this machine seems offline; copy a {tool} {version} binary for "
                f"{python_platform.system()}/{_arch()} to {target} (chmod +x), or install {tool} from {home}"
            ),
        ) from error
    if len(data) < 1_000_000:
        raise PermanentError(
            f"the download from {url} is too small to be {tool} ({len(data)} bytes)",
            hint=f"install {tool} {version} by hand from {home}",
        )
    return data


def install_k3d(destination: Path | None = None) -> Path:
    """Download the pinned k3d release to ~/.platform/bin/k3d (atomically, 0755)."""
    target = (destination or tools_dir()) / "k3d"
    data = _download("k3d", K3D_VERSION, k3d_url(), target, "https://k3d.io")
    write_atomic(target, data, mode=0o755)
    return target


def install_tofu(destination: Path | None = None) -> Path:
    """Download the pinned OpenTofu release to ~/.platform/bin/tofu (atomically, 0755)."""
    target = (destination or tools_dir()) / "tofu"
    archive = _download("tofu", TOFU_VERSION, tofu_url(), target, "https://opentofu.org")
    with zipfile.ZipFile(io.BytesIO(archive)) as bundle:
        write_atomic(target, bundle.read("tofu"), mode=0o755)
    return target
