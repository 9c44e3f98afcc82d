"""A base image made on this machine from Debian packages, for building the Dockerfile
without any registry: debootstrap a bookworm rootfs with python3, python3-venv and git,
then `docker import` it. Cached by tag across test runs (built only when absent).

Used by the image tests' `base_image` fixture (tests/integration/image/conftest.py).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

TAG = "platform-test-base:bookworm"
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("python3", "python3-venv", "git", "ca-certificates")


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
        # What a slim base would not carry: apt lists, caches, docs, man pages.
        for junk in ("var/lib/apt/lists", "var/cache/apt", "usr/share/doc", "usr/share/man"):
            target = rootfs / junk
            if target.exists():
                shutil.rmtree(target)
                target.mkdir(parents=True)
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
