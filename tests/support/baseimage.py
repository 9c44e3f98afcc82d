"""A base image made on this machine from Debian packages, for building the Dockerfile
without any registry: debootstrap a bookworm rootfs with python3, slimmed the way Debian's
official slim images are (no docs, man pages, translations or apt caches, and dpkg/apt
configured to keep it so), then `docker import` it. Like python:3.11-slim-bookworm it
has no git, so the Dockerfile's own git install (apt, from deb.debian.org) is what the
tests build and run. Cached by tag across test runs (built only when absent).

Used by the `base_image` fixture (tests/conftest.py): the image tests and the real-node
cluster build the component image on it.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

TAG = "platform-test-base:bookworm-slim"
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("python3",)
# What debuerreotype writes into Debian's slim images (/etc/dpkg/dpkg.cfg.d/docker and
# /etc/apt/apt.conf.d/docker-clean): later installs leave no docs or caches either.
DPKG_EXCLUDES = "".join(
    f"path-exclude {path}\n"
    for path in ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/locale/*", "/usr/share/info/*")
)
APT_CLEAN = (
    'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb || true"; };\n'
    'Dir::Cache::pkgcache "";\nDir::Cache::srcpkgcache "";\n'
)


def image_exists(tag: str, host: str) -> bool:
    result = subprocess.run(
        ["docker", "-H", host, "image", "inspect", tag],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode == 0


def build_base_image(host: str, tag: str = TAG) -> float:
    """debootstrap + docker import; returns the seconds it took (0 when cached)."""
    if image_exists(tag, host):
        return 0.0
    debootstrap = shutil.which("debootstrap") or (
        "/usr/sbin/debootstrap" if Path("/usr/sbin/debootstrap").exists() else None
    )
    if debootstrap is None:
        raise FileNotFoundError(
            "debootstrap is not installed (Debian: apt-get install debootstrap)"
        )
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="platform-base-") as work:
        rootfs = Path(work) / "rootfs"
        subprocess.run(
            [
                debootstrap,
                "--variant=minbase",
                f"--include={','.join(PACKAGES)}",
                SUITE,
                str(rootfs),
                MIRROR,
            ],
            check=True,
            capture_output=True,
            timeout=900,
        )
        # What a slim base does not carry: apt lists, caches, docs, man pages, translations.
        for junk in (
            "var/lib/apt/lists",
            "var/cache/apt",
            "usr/share/doc",
            "usr/share/man",
            "usr/share/locale",
            "usr/share/info",
        ):
            target = rootfs / junk
            if target.exists():
                shutil.rmtree(target)
                target.mkdir(parents=True)
        (rootfs / "var/lib/apt/lists/partial").mkdir(parents=True)
        (rootfs / "var/cache/apt/archives/partial").mkdir(parents=True)
        (rootfs / "etc/dpkg/dpkg.cfg.d/docker").write_text(DPKG_EXCLUDES)
        (rootfs / "etc/apt/apt.conf.d/docker-clean").write_text(APT_CLEAN)
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        try:
            subprocess.run(
                [
                    "docker",
                    "-H",
                    host,
                    "import",
                    "--change",
                    'CMD ["/bin/bash"]',
                    "--change",
                    "ENV LANG=C.UTF-8",
                    "-",
                    tag,
                ],
                stdin=tar.stdout,
                check=True,
                capture_output=True,
                timeout=600,
            )
        finally:
            if tar.stdout is not None:
                tar.stdout.close()
            tar.wait()
    return time.monotonic() - started
