"""Build the component image (`platform image build`): wheels on the host, then the
Dockerfile through the Docker SDK.

`pip wheel` (run with the interpreter that runs `platform`) turns the project checkout
and every dependency into wheels in a temporary build context beside a copy of the
Dockerfile, so nothing inside the image build needs a package registry: the build works
offline once the wheels are in pip's cache and the base image is local. Called by
bootstrap/cli/image.py; the Docker calls live in bootstrap/engines/dockerhost.py.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bootstrap.engines import dockerhost
from stacks.errors import PermanentError, trim

WHEEL_TIMEOUT_SECONDS = 900


@dataclass(frozen=True)
class BuildReport:
    tag: str
    image_id: str
    size_bytes: int
    wheels: int
    wheel_seconds: float
    build_seconds: float


def default_source() -> Path:
    """The project checkout this code runs from (where pyproject.toml and Dockerfile are)."""
    return Path(__file__).resolve().parents[2]


def check_source(source: Path) -> Path:
    dockerfile = source / "Dockerfile"
    if not (source / "pyproject.toml").is_file() or not dockerfile.is_file():
        raise PermanentError(
            f"'{source}' is not a platform source checkout (no pyproject.toml and Dockerfile)",
            hint="run `platform image build --source DIR` with DIR a clone of the platform repository",
        )
    return dockerfile


def make_wheels(source: Path, wheel_dir: Path, on_line: Callable[[str], None]) -> int:
    """`pip wheel` the project and its dependencies into wheel_dir; the number of wheels."""
    wheel_dir.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--disable-pip-version-check",
        "--quiet",
        "--wheel-dir",
        str(wheel_dir),
        str(source),
    ]
    on_line(f"pip wheel {source} (Python {sys.version_info.major}.{sys.version_info.minor})")
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=WHEEL_TIMEOUT_SECONDS, check=False
        )
    except subprocess.TimeoutExpired as error:
        raise PermanentError(
            f"`pip wheel` did not finish within {WHEEL_TIMEOUT_SECONDS}s",
            hint="check the network to PyPI (or a pip cache that holds every dependency)",
        ) from error
    if result.returncode != 0:
        raise PermanentError(
            f"failed to build wheels for the image: {trim(result.stderr.strip(), 600)}",
            hint="`pip wheel` needs PyPI (or pip's cache) for the dependencies; check the network",
        )
    return len(list(wheel_dir.glob("*.whl")))


def build_component_image(
    tag: str,
    source: Path | None = None,
    base: str | None = None,
    on_line: Callable[[str], None] = lambda line: None,
    nocache: bool = False,
) -> BuildReport:
    """Wheels into a temporary context, then the image `tag` (ARG BASE = `base` if given)."""
    source = (source or default_source()).resolve()
    dockerfile = check_source(source)
    with tempfile.TemporaryDirectory(prefix="platform-image-") as work:
        context = Path(work)
        started = time.monotonic()
        wheels = make_wheels(source, context / "wheels", on_line)
        wheel_seconds = time.monotonic() - started
        shutil.copyfile(dockerfile, context / "Dockerfile")
        ignore = source / ".dockerignore"
        if ignore.is_file():
            shutil.copyfile(ignore, context / ".dockerignore")
        started = time.monotonic()
        built = dockerhost.build_image(
            context,
            tag,
            buildargs={"BASE": base} if base else None,
            on_line=on_line,
            nocache=nocache,
        )
        build_seconds = time.monotonic() - started
    return BuildReport(
        built.tag, built.image_id, built.size_bytes, wheels, wheel_seconds, build_seconds
    )
