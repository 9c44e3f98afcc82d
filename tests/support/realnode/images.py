"""Container images for the real-node test cluster, made on this machine without a registry.

No registry is reachable here, so every image a real-node pod runs is made locally:

- `single_layer_archive` writes an image archive in `docker save`'s format (one layer
  tar, a config whose `rootfs.diff_ids` names it, `manifest.json`) straight from files on
  disk, with no daemon. containerd's `ctr images import` reads it. The static binaries
  testenv built (CoreDNS, Traefik, local-path-provisioner, OpenBao's `bao`) and
  Debian's static busybox become images this way in well under a second.
- the pause image is a tiny static C program (pause.c beside this file), built with gcc.
- the project's component image is the real `platform image build` output, moved from
  Docker with `docker save | ctr images import`.

Used by tests/support/realnode/cluster.py, which imports them into its containerd.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).parent


@dataclass(frozen=True)
class ImageFile:
    """A file of an image's root filesystem: copied from `source`, or `link` to a path."""

    path: str  # absolute path inside the image
    source: Path | None = None
    link: str = ""
    mode: int = 0o755


@dataclass(frozen=True)
class ImageSpec:
    """What `single_layer_archive` writes: one reference, one layer, a start command."""

    reference: str
    files: tuple[ImageFile, ...]
    entrypoint: tuple[str, ...]
    directories: tuple[str, ...] = ("/tmp",)
    env: Mapping[str, str] = field(default_factory=dict)
    user: str = ""


def _directory(path: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(path.strip("/"))
    info.type = tarfile.DIRTYPE
    # /tmp and data directories are written by non-root users (OpenBao runs as uid 100).
    info.mode = 0o1777 if path == "/tmp" else 0o755
    info.mtime = 0
    return info


def _parents(paths: Iterable[str]) -> list[str]:
    found: set[str] = set()
    for path in paths:
        parts = path.strip("/").split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            found.add("/" + "/".join(parts[:depth]))
    return sorted(found)


def _layer(spec: ImageSpec) -> bytes:
    """The layer tar, deterministic (mtime 0, fixed owners), so the same inputs give the
    same image id and a re-import is a no-op."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as layer:
        file_paths = [f.path for f in spec.files]
        for directory in sorted(set(_parents(file_paths)) | set(spec.directories)):
            layer.addfile(_directory(directory))
        for item in spec.files:
            info = tarfile.TarInfo(item.path.strip("/"))
            info.mtime = 0
            if item.link:
                info.type = tarfile.SYMTYPE
                info.linkname = item.link
                layer.addfile(info)
                continue
            assert item.source is not None, item.path
            data = item.source.read_bytes()
            info.size = len(data)
            info.mode = item.mode
            layer.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _member(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    archive.addfile(info, io.BytesIO(data))


def single_layer_archive(spec: ImageSpec, target: Path) -> Path:
    """Write `spec` as a docker-save archive at `target` (read by `ctr images import`)."""
    layer = _layer(spec)
    layer_digest = hashlib.sha256(layer).hexdigest()
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {
            "Entrypoint": list(spec.entrypoint),
            "Env": [f"{k}={v}" for k, v in sorted(spec.env.items())]
            or ["PATH=/usr/local/bin:/usr/bin:/bin"],
            "User": spec.user,
            "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer_digest}"]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "tests/support/realnode"}],
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    manifest = [
        {
            "Config": config_name,
            "RepoTags": [spec.reference],
            "Layers": [f"{layer_digest}/layer.tar"],
        }
    ]
    target.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(target, mode="w") as archive:
        _member(archive, f"{layer_digest}/layer.tar", layer)
        _member(archive, config_name, config_bytes)
        _member(archive, "manifest.json", json.dumps(manifest).encode())
    return target


def build_pause(workdir: Path) -> Path:
    """The pause binary (static, a few hundred kB) from pause.c; rebuilt only when absent."""
    binary = workdir / "pause"
    if not binary.exists():
        workdir.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["gcc", "-Os", "-static", "-o", str(binary), str(HERE / "pause.c")],
            check=True,
            capture_output=True,
        )
    return binary


def busybox_files(busybox: Path) -> tuple[ImageFile, ...]:
    """Busybox and a link per applet (sh, mkdir, nslookup, ...)."""
    applets = subprocess.run(
        [str(busybox), "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    links = tuple(ImageFile(f"/bin/{a}", link="busybox") for a in applets if a != "busybox")
    return (ImageFile("/bin/busybox", source=busybox), *links)


@dataclass(frozen=True)
class ImportedImage:
    reference: str
    seconds: float


def import_archive(ctr: list[str], archive: Path, reference: str) -> ImportedImage:
    """`ctr images import` an archive into containerd's k8s.io namespace (the kubelet's)."""
    started = time.monotonic()
    with open(archive, "rb") as data:
        result = subprocess.run(
            [*ctr, "images", "import", "-"],
            stdin=data,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    if result.returncode != 0:
        raise RuntimeError(f"ctr images import {archive.name} failed: {result.stderr.strip()}")
    return ImportedImage(reference, time.monotonic() - started)


def import_from_docker(ctr: list[str], reference: str, docker_host: str) -> ImportedImage:
    """Move an image from the Docker engine into containerd: `docker save | ctr import`."""
    started = time.monotonic()
    save = subprocess.Popen(
        ["docker", "-H", docker_host, "save", reference], stdout=subprocess.PIPE
    )
    assert save.stdout is not None
    result = subprocess.run(
        [*ctr, "images", "import", "-"],
        stdin=save.stdout,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    save.stdout.close()
    saved = save.wait(timeout=600)
    if saved != 0 or result.returncode != 0:
        raise RuntimeError(
            f"moving {reference} from Docker into containerd failed: "
            f"docker save exited {saved}; ctr: {result.stderr.strip()}"
        )
    return ImportedImage(reference, time.monotonic() - started)
