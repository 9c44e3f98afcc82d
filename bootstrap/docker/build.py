"""Build the component image (`platform image build`): wheels on the host, then the
Dockerfile through the Docker SDK.

`pip wheel` (run with the interpreter that runs `platform`) turns the project checkout
and every dependency into wheels in a temporary build context beside a copy of the
Dockerfile, so nothing inside the image build needs a package registry: the build works
offline once the wheels are in pip's cache and the base image is local. Called by
bootstrap/cli/image.py; the Docker calls live in bootstrap/docker/host.py.

The dependencies and the project go to separate directories (wheels/deps, wheels/project)
and separate Dockerfile stages: the dependency wheels come byte for byte from pip's cache,
so their layer is reused and a rebuild after a code change redoes only the project. The
dependency stage is tagged (`<tag>-deps`) so that removing what earlier builds left
behind (untagged images with the build's label) never removes that cache.

Every image carries the platform's version and a hash of the code it was built from
(`io.platform.version`, `io.platform.source`): `platform up` (the `tools` stage) builds
only when the pinned image is missing or its labels say it is another build
(`build_needed`). The base image is looked for before the build: when it is absent and
cannot be pulled, one sentence names `--base` and the offline bundle.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bootstrap import __version__
from bootstrap.docker import host, renderers
from bootstrap.images import COMPONENT_BASE_IMAGE
from stacks.errors import PermanentError, PlatformError, trim

WHEEL_TIMEOUT_SECONDS = 900
# The distribution name as it appears in wheel file names (pyproject's "platform-gitops").
PROJECT_WHEEL_GLOB = "platform_gitops-*.whl"
# The LABEL every image of the Dockerfile carries (deps, project and final stages).
BUILD_LABEL = "io.platform.build=component-image"
DEPS_STAGE = "deps"
VERSION_LABEL = "io.platform.version"
SOURCE_LABEL = "io.platform.source"
BASE_LABEL = "io.platform.base"  # for people: what it was built on
# What goes into the image from the code (the rest of the package data is not code).
HASHED_SUFFIXES = (".py", ".yaml", ".yml", ".json", ".tmpl")


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


def is_checkout(path: Path) -> bool:
    """A platform source checkout: its pyproject names this project and a Dockerfile is beside it."""
    pyproject = path / "pyproject.toml"
    if not pyproject.is_file() or not (path / "Dockerfile").is_file():
        return False
    return 'name = "platform-gitops"' in pyproject.read_text(errors="replace")


def checkout_version(path: Path) -> str:
    for line in (path / "bootstrap" / "__init__.py").read_text(errors="replace").splitlines():
        if line.startswith("__version__"):
            return line.split("=", 1)[1].strip().strip("\"'")
    return ""


def find_source() -> Path:
    """The checkout to build from: the one this code runs from (an editable install), else
    the current directory when it is a checkout of this same version (`pip install .`
    then `platform up` in the clone, as the README says)."""
    own = default_source()
    if is_checkout(own):
        return own
    here = Path.cwd()
    if is_checkout(here) and checkout_version(here) == __version__:
        return here
    raise PermanentError(
        "the component image is built from the platform's source, and neither this "
        f"installation nor the current directory ({here}) is a checkout of platform {__version__}",
        hint="run `platform up` in the clone you installed from, or build the image with "
        "`platform image build --source DIR`",
    )


def source_hash() -> str:
    """A hash of the code the image would hold: the running packages' files. The base is
    not part of it: an image built with `platform image build --base X` is this version's
    image, and `platform up` (perhaps offline) must not rebuild it on another base."""
    digest = hashlib.sha256()
    for package in ("bootstrap", "stacks"):
        root = default_source() / package
        for path in sorted(root.rglob("*")):
            relative = path.relative_to(root).as_posix()
            if (
                not path.is_file()
                or path.suffix not in HASHED_SUFFIXES
                or "__pycache__" in relative
                or relative.startswith("assets/")
            ):
                continue
            digest.update(f"{package}/{relative}\n".encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def build_labels(base: str) -> dict[str, str]:
    return {VERSION_LABEL: __version__, SOURCE_LABEL: source_hash(), BASE_LABEL: base}


def build_needed(tag: str) -> str:
    """Why `tag` must be built ("" when the local image is this version's build)."""
    labels = host.image_labels(tag)
    if labels is None:
        return f"{tag} is not in Docker"
    if labels.get(VERSION_LABEL) != __version__:
        return f"{tag} in Docker is version {labels.get(VERSION_LABEL) or 'unknown'}"
    if labels.get(SOURCE_LABEL) != source_hash():
        return f"{tag} in Docker was built from other code"
    return ""


def ensure_base(base: str, on_line: Callable[[str], None]) -> None:
    """The base image must be local before the build; pull it, or say what to do."""
    if host.image_labels(base) is not None:
        return
    try:
        host.pull_image(base, on_line)
    except PlatformError as error:
        raise PermanentError(
            f"the component image is built on {base}, which is not in Docker and could not "
            f"be pulled ({trim(str(error), 300)})",
            hint="build on a Python 3.11 Debian image you have with `--base IMAGE` (or "
            "image.base in platform.yaml), or load the offline bundle, which holds the built "
            "image, with `platform up --images FILE`",
        ) from error


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
    """Wheels into a temporary context, then the image `tag` (ARG BASE = `base` if given),
    labelled with this version and the hash of its code."""
    source = (source or find_source()).resolve()
    dockerfile = check_source(source)
    ensure_base(base or COMPONENT_BASE_IMAGE, on_line)
    labels = build_labels(base or COMPONENT_BASE_IMAGE)
    with tempfile.TemporaryDirectory(prefix="platform-image-") as work:
        context = Path(work)
        started = time.monotonic()
        wheels = make_wheels(source, context / "wheels", on_line)
        wheel_seconds = time.monotonic() - started
        shutil.copyfile(dockerfile, context / "Dockerfile")
        # helm and kustomize for the reconciler's renders (renderers.py says from where).
        carried = renderers.stage(context / "bin", on_line)
        if carried:
            on_line(f"the image carries {', '.join(carried)}")
        ignore = source / ".dockerignore"
        if ignore.is_file():
            shutil.copyfile(ignore, context / ".dockerignore")
        started = time.monotonic()
        buildargs = {"BASE": base} if base else None
        built = host.build_image(
            context, tag, buildargs=buildargs, on_line=on_line, nocache=nocache, labels=labels
        )
        # Then the dependency stage under its own tag (see the module docstring): every
        # step of it is in the layer cache from the build just done, so this only tags.
        host.build_image(
            context, deps_tag(tag), buildargs=buildargs, on_line=on_line, target=DEPS_STAGE
        )
        build_seconds = time.monotonic() - started
    reclaimed = host.prune_untagged(BUILD_LABEL)
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
