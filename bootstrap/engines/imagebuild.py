"""Build the component image (`platform image build`): wheels on the host, then the
Dockerfile through the Docker SDK.

`pip wheel` (run with the interpreter that runs `platform`) turns the project checkout
and every dependency into wheels in a temporary build context beside a copy of the
Dockerfile, so nothing inside the image build needs a package registry: the build works
offline once the wheels are in pip's cache and the base image is local. Called by
bootstrap/cli/image.py; the Docker calls live in bootstrap/engines/dockerhost.py.

The dependencies and the project go to separate directories (wheels/deps, wheels/project)
and separate Dockerfile stages: the dependency wheels come byte for byte from pip's cache,
so their layer is reused and a rebuild after a code change redoes only the project. The
dependency stage is tagged (`<tag>-deps`) so that removing what earlier builds left
behind (untagged images with the build's label) never removes that cache.
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
# The distribution name as it appears in wheel file names (pyproject's "platform-gitops").
PROJECT_WHEEL_GLOB = "platform_gitops-*.whl"
# The LABEL every image of the Dockerfile carries (deps, project and final stages).
BUILD_LABEL = "io.platform.build=component-image"
DEPS_STAGE = "deps"


@dataclass(frozen=True)
class BuildReport:
    tag: str
    image_id: str
    size_bytes: int
    wheels: int
    wheel_seconds: float
    build_seconds: float
    reclaimed_bytes: int


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


def deps_tag(tag: str) -> str:
    """The tag kept on the dependency stage of `tag`'s build: `repo:1.0` -> `repo:1.0-deps`."""
    repository, _, version = tag.rpartition(":")
    if not repository or "/" in version:  # no tag part (`repo`, `host:5000/repo`)
        repository, version = tag, "latest"
    return f"{repository}:{version}-deps"


def make_wheels(source: Path, wheel_dir: Path, on_line: Callable[[str], None]) -> int:
    """`pip wheel` the project, its dependencies and pip into wheel_dir/deps, then move the
    project's own wheel to wheel_dir/project; the number of wheels."""
    deps = wheel_dir / "deps"
    project = wheel_dir / "project"
    deps.mkdir(parents=True, exist_ok=True)
    project.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--disable-pip-version-check",
        "--quiet",
        "--wheel-dir",
        str(deps),
        str(source),
        "pip",  # run from its wheel inside the build; the image's venv has no pip
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
    own = list(deps.glob(PROJECT_WHEEL_GLOB))
    if len(own) != 1:
        raise PermanentError(
            f"`pip wheel` made {len(own)} wheels named {PROJECT_WHEEL_GLOB}, expected one",
            hint="build from a clean platform checkout (`platform image build --source DIR`)",
        )
    own[0].rename(project / own[0].name)
    return len(list(deps.glob("*.whl"))) + 1


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
        buildargs = {"BASE": base} if base else None
        built = dockerhost.build_image(
            context, tag, buildargs=buildargs, on_line=on_line, nocache=nocache
        )
        # Then the dependency stage under its own tag (see the module docstring): every
        # step of it is in the layer cache from the build just done, so this only tags.
        dockerhost.build_image(
            context, deps_tag(tag), buildargs=buildargs, on_line=on_line, target=DEPS_STAGE
        )
        build_seconds = time.monotonic() - started
    reclaimed = dockerhost.prune_untagged(BUILD_LABEL)
    if reclaimed:
        on_line(f"removed earlier builds' untagged images ({reclaimed / 1e6:.0f} MB)")
    return BuildReport(
        built.tag,
        built.image_id,
        built.size_bytes,
        wheels,
        wheel_seconds,
        build_seconds,
        reclaimed,
    )
