"""The pinned helper tools `platform up` installs for the user into ~/.platform/bin.

k3d (for the default engine) and OpenTofu (for the terraform stage), downloaded from their
official releases when missing and verified against the SHA-256 pinned in
bootstrap/pins.py for this OS and CPU. The file is streamed to a temporary name in the
same directory, hashed on the way, and renamed into place only when complete and
verified: a mismatch, a cut-short download or Ctrl-C leaves nothing behind, and the next
run starts again. Offline, the error names the exact file to put where.

Called by the `tools` stage (bootstrap/stages/tools.py), `platform doctor --install`, and
the terraform stage's fallback (bootstrap/stages/tofu.py).

For tests only, `PLATFORM_TEST_DOWNLOADS` replaces the release address and the checksums
(JSON: {"base_url": "http://127.0.0.1:PORT", "sha256": {"k3d": "...", "tofu": "..."}}):
the tests serve real binaries from a local server. It is deliberately not a setting
(`platform config` does not know it): users cannot turn verification off.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import platform as python_platform
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bootstrap.pins import K3D_SHA256, K3D_VERSION, TOFU_SHA256, TOFU_VERSION
from stacks.errors import PermanentError

DOWNLOAD_TIMEOUT = 15.0
CHUNK = 256 * 1024
# A partial file this old belongs to no running download (each chunk rewrites its mtime):
# it is what a killed run left, and the next install removes it.
STALE_PARTIAL_SECONDS = 600
TEST_OVERRIDE = "PLATFORM_TEST_DOWNLOADS"

# (bytes so far, total bytes or None) -> None; the terminal draws a bar from it. It may
# raise (the stage's Ctrl-C checkpoint): the partial file is removed on the way out.
ProgressCallback = Callable[[int, int | None], None]


def tools_dir() -> Path:
    """~/.platform/bin (under PLATFORM_HOME when that moves the platform's home)."""
    from bootstrap.config import platform_home

    return platform_home() / "bin"


def host_platform() -> tuple[str, str]:
    """This machine as Go release files name it: (linux|darwin|..., amd64|arm64|...)."""
    system = python_platform.system().lower()
    machine = python_platform.machine().lower()
    return system, {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


@dataclass(frozen=True)
class Tool:
    name: str
    version: str
    home: str  # where a person installs it by hand
    release_base: str  # the release's download directory
    asset_pattern: str  # the release file, with {os} and {arch}
    checksums: dict[tuple[str, str], str]
    member: str | None = None  # the binary inside a zip asset

    def asset(self, system: str, arch: str) -> str:
        return self.asset_pattern.format(os=system, arch=arch)

    def supported(self) -> list[str]:
        return [f"{s}/{a}" for s, a in sorted(self.checksums)]

    def describe(self) -> str:
        return f"{self.name} {self.version}"


K3D = Tool(
    "k3d",
    K3D_VERSION,
    "https://k3d.io",
    f"https://github.com/k3d-io/k3d/releases/download/{K3D_VERSION}",
    "k3d-{os}-{arch}",
    K3D_SHA256,
)
TOFU = Tool(
    "tofu",
    TOFU_VERSION,
    "https://opentofu.org/docs/intro/install/",
    f"https://github.com/opentofu/opentofu/releases/download/v{TOFU_VERSION}",
    f"tofu_{TOFU_VERSION}_{{os}}_{{arch}}.zip",
    TOFU_SHA256,
    member="tofu",
)
TOOLS = {tool.name: tool for tool in (K3D, TOFU)}


@dataclass(frozen=True)
class Source:
    """Where one download comes from and what it must hash to."""

    url: str
    sha256: str
    asset: str


def _test_override() -> dict[str, object]:
    raw = os.environ.get(TEST_OVERRIDE, "")
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as error:
        raise PermanentError(f"{TEST_OVERRIDE} is not JSON: {error}") from error
    return value if isinstance(value, dict) else {}


def source_for(tool: Tool, system: str | None = None, arch: str | None = None) -> Source:
    """The download of `tool` for this machine; refuses a platform with no pinned checksum."""
    here_system, here_arch = host_platform()
    system, arch = system or here_system, arch or here_arch
    override = _test_override()
    asset = tool.asset(system, arch)
    sums = override.get("sha256")
    sha = str(sums[tool.name]) if isinstance(sums, dict) and tool.name in sums else ""
    sha = sha or tool.checksums.get((system, arch), "")
    if not sha:
        raise PermanentError(
            f"platform downloads {tool.describe()} only for {', '.join(tool.supported())} "
            f"(the platforms whose release checksum it pins), not for {system}/{arch}",
            hint=f"install {tool.describe()} yourself ({tool.home}) and put it on PATH or at "
            f"{tools_dir() / tool.name}, then run `platform up` again",
        )
    base = str(override.get("base_url") or tool.release_base).rstrip("/")
    return Source(f"{base}/{asset}", sha.lower(), asset)


def installed(tool: Tool) -> Path | None:
    path = tools_dir() / tool.name
    return path if path.is_file() and os.access(path, os.X_OK) else None


def _offline_hint(tool: Tool, source: Source, target: Path) -> str:
    what = f"the file `{tool.member}` from {source.asset}" if tool.member else f"{source.asset}"
    return (
        f"offline: download {what} ({tool.release_base}/{source.asset}, SHA-256 "
        f"{source.sha256}) on a connected machine and put it at {target} (chmod +x); "
        f"or install {tool.describe()} from {tool.home}; then run `platform up` again"
    )


def _fetch(
    tool: Tool, source: Source, directory: Path, target: Path, progress: ProgressCallback | None
) -> Path:
    """Stream the download into a temporary file in `directory`, hashing it; the file's
    path once complete and verified. On any failure the temporary file is removed."""
    handle, name = tempfile.mkstemp(prefix=f".{tool.name}.", suffix=".partial", dir=directory)
    partial = Path(name)
    try:
        digest = hashlib.sha256()
        received = 0
        with os.fdopen(handle, "wb") as out:
            try:
                with urllib.request.urlopen(source.url, timeout=DOWNLOAD_TIMEOUT) as response:  # noqa: S310 - pinned https URL, or the tests' local server
                    length = response.headers.get("Content-Length")
                    total = int(length) if length and length.isdigit() else None
                    while chunk := response.read(CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        received += len(chunk)
                        if progress is not None:
                            progress(received, total)
            except http.client.IncompleteRead as error:
                raise PermanentError(
                    f"the download of {tool.describe()} from {source.url} was cut short after "
                    f"{received + len(error.partial)} bytes; nothing was installed",
                    hint="run `platform up` again to retry the download",
                ) from error
            except (
                urllib.error.URLError,
                TimeoutError,
                OSError,
                http.client.HTTPException,
            ) as error:
                reason = getattr(error, "reason", None) or error
                raise PermanentError(
                    f"could not download {tool.describe()} from {source.url}: {reason}",
                    hint=_offline_hint(tool, source, target),
                ) from error
        if total is not None and received != total:
            raise PermanentError(
                f"the download of {tool.describe()} from {source.url} was cut short "
                f"({received} of {total} bytes); nothing was installed",
                hint="run `platform up` again to retry the download",
            )
        actual = digest.hexdigest()
        if actual != source.sha256:
            raise PermanentError(
                f"the download of {tool.describe()} from {source.url} has SHA-256 {actual}, "
                f"not the pinned {source.sha256}: refused, nothing was installed",
                hint=f"the file is not the official {source.asset}; retry later, or install "
                f"{tool.describe()} by hand from {tool.home}",
            )
        return partial
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def _remove_stale_partials(tool: Tool, directory: Path) -> None:
    """Partial downloads a killed run (kill -9, or Ctrl-C racing the exit) left behind."""
    now = time.time()
    for partial in directory.glob(f".{tool.name}.*.partial"):
        with contextlib.suppress(OSError):
            if now - partial.stat().st_mtime > STALE_PARTIAL_SECONDS:
                partial.unlink()


def install(tool: Tool, progress: ProgressCallback | None = None) -> Path:
    """Download, verify and install `tool` at ~/.platform/bin/<name> (0755, atomically)."""
    source = source_for(tool)
    directory = tools_dir()
    target = directory / tool.name
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise PermanentError(
            f"cannot create {directory}: {error}", hint="check the permissions of ~/.platform"
        ) from error
    _remove_stale_partials(tool, directory)
    verified = _fetch(tool, source, directory, target, progress)
    try:
        if tool.member is not None:
            with zipfile.ZipFile(verified) as bundle:
                data = bundle.read(tool.member)
            verified.write_bytes(data)
        verified.chmod(0o755)
        os.replace(verified, target)  # atomic: the old file or the whole new one, never half
    except (OSError, KeyError, zipfile.BadZipFile) as error:
        raise PermanentError(
            f"could not install {tool.describe()} from {source.asset}: {error}",
            hint=f"install {tool.describe()} by hand from {tool.home}",
        ) from error
    finally:
        with contextlib.suppress(FileNotFoundError):
            verified.unlink()
    return target


def install_k3d(progress: ProgressCallback | None = None) -> Path:
    return install(K3D, progress)


def install_tofu(progress: ProgressCallback | None = None) -> Path:
    return install(TOFU, progress)
