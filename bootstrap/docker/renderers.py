"""helm and kustomize for the component image: the reconciler renders charts and
kustomizations with them (issue 18), as Argo CD's repo-server carries both.

Each comes from its official release archive, verified against the SHA-256 pinned in
bootstrap/pins.py for linux and the build machine's CPU (the image runs the host's
architecture), and is put into the build context's bin/ for the Dockerfile to copy. A
release whose checksum is not pinned, or that cannot be downloaded, is left out with one
line saying so: the image still builds, and Applications that need the tool fail with
"cannot run helm" in their status rather than every component being unavailable.

`PLATFORM_TEST_RENDERERS` (JSON {"helm": PATH, "kustomize": PATH}) puts given binaries
in instead, unverified: for the tests, which use the binaries testenv builds from Go
modules, and for a machine that cannot reach the releases. Like PLATFORM_TEST_DOWNLOADS
it is deliberately not a setting.

Called by bootstrap/docker/build.py.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bootstrap.pins import HELM_SHA256, HELM_VERSION, KUSTOMIZE_SHA256, KUSTOMIZE_VERSION
from bootstrap.tools import host_platform
from stacks.errors import PermanentError

OVERRIDE = "PLATFORM_TEST_RENDERERS"
DOWNLOAD_TIMEOUT = 30.0
MAX_ARCHIVE = 200 * 1024 * 1024


@dataclass(frozen=True)
class Renderer:
    name: str
    version: str
    url_pattern: str  # {arch}
    member_pattern: str  # the binary inside the archive, {arch}
    checksums: dict[tuple[str, str], str]


RENDERERS = (
    Renderer(
        "helm",
        HELM_VERSION,
        f"https://get.helm.sh/helm-{HELM_VERSION}-linux-{{arch}}.tar.gz",
        "linux-{arch}/helm",
        HELM_SHA256,
    ),
    Renderer(
        "kustomize",
        KUSTOMIZE_VERSION,
        "https://github.com/kubernetes-sigs/kustomize/releases/download/"
        f"kustomize%2F{KUSTOMIZE_VERSION}/kustomize_{KUSTOMIZE_VERSION}_linux_{{arch}}.tar.gz",
        "kustomize",
        KUSTOMIZE_SHA256,
    ),
)


def _overrides() -> dict[str, str]:
    raw = os.environ.get(OVERRIDE, "")
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as error:
        raise PermanentError(f"{OVERRIDE} is not JSON: {error}") from error
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def stage(bin_dir: Path, on_line: Callable[[str], None]) -> list[str]:
    """Put helm and kustomize into `bin_dir` (the build context's bin/); the names of
    those put there. The directory exists afterwards even when empty (COPY needs it)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    overrides = _overrides()
    _, arch = host_platform()
    staged = []
    for tool in RENDERERS:
        target = bin_dir / tool.name
        given = overrides.get(tool.name)
        if given:
            shutil.copyfile(given, target)
            target.chmod(0o755)
            staged.append(tool.name)
            continue
        sha = tool.checksums.get(("linux", arch), "")
        if not sha:
            on_line(
                f"the image goes without {tool.name} {tool.version}: no release checksum is "
                f"pinned for linux/{arch} (bootstrap/pins.py); Helm/Kustomize Applications "
                "will say so in their status"
            )
            continue
        try:
            data = _download(tool.url_pattern.format(arch=arch), sha)
            target.write_bytes(_member(data, tool.member_pattern.format(arch=arch)))
        except PermanentError as error:
            on_line(f"the image goes without {tool.name} {tool.version}: {error}")
            continue
        target.chmod(0o755)
        staged.append(tool.name)
    return staged


def _download(url: str, sha256: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response:  # noqa: S310 - pinned https URL
            data: bytes = response.read(MAX_ARCHIVE + 1)
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        raise PermanentError(f"cannot download {url}: {getattr(error, 'reason', error)}") from error
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise PermanentError(f"{url} has SHA-256 {digest}, not the pinned {sha256}; not used")
    return data


def _member(data: bytes, member: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        for item in archive.getmembers():
            if item.isfile() and (item.name == member or item.name.endswith("/" + member)):
                extracted = archive.extractfile(item)
                if extracted is not None:
                    return extracted.read()
    raise PermanentError(f"the release archive holds no {member}")
