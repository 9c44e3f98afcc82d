"""The offline image bundle: every pinned image in one archive, and loading it back.

`platform images save FILE` writes the pinned images present in the local Docker engine
into one `docker save` archive and names the missing ones with the command that gets
each. `platform up --images FILE` loads the archive into Docker (k3d's node and helper
images come from there) and records it in the platform's state, so the k3d engine mounts
it into k3s's airgap images directory: k3s imports it at start, before it would pull.
The charts the seeded repository references travel beside it as FILE.charts.tar
(charts_bundle.py); `up` records that too, for any engine, and the reconciler stage
preloads them. Called by bootstrap/cli/image.py and bootstrap/cli/up.py; preflight uses
`image_report`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bootstrap.config import Settings
from bootstrap.docker import host
from bootstrap.images import PinnedImage, all_images, normalise
from bootstrap.state import PlatformState
from stacks.errors import PermanentError

STATE_KEY = "images_archive"
CHARTS_KEY = "charts_archive"


@dataclass(frozen=True)
class ImageReport:
    present: tuple[PinnedImage, ...]
    missing: tuple[PinnedImage, ...]


def image_report(images: tuple[PinnedImage, ...] | None = None) -> ImageReport:
    """Which pinned images the local Docker engine has (raises PlatformError without Docker)."""
    wanted = images if images is not None else all_images()
    local = {normalise(tag) for tag in host.local_images()}
    present = tuple(i for i in wanted if normalise(i.reference) in local)
    missing = tuple(i for i in wanted if normalise(i.reference) not in local)
    return ImageReport(present, missing)


@dataclass(frozen=True)
class SavedBundle:
    path: Path
    size_bytes: int
    saved: tuple[PinnedImage, ...]
    missing: tuple[PinnedImage, ...]


def save_bundle(path: Path, extra: tuple[str, ...] = ()) -> SavedBundle:
    """Every pinned image present locally (plus `extra` references) into one archive."""
    extras = tuple(PinnedImage(ref, "extra (--include)") for ref in extra)
    report = image_report(all_images() + extras)
    if not report.present:
        raise PermanentError(
            "none of the pinned images is present in Docker, so there is nothing to save",
            hint="get them first: " + "; ".join(i.how_to_get() for i in report.missing[:3]),
        )
    path = path.expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    size = host.save_images([i.reference for i in report.present], path)
    return SavedBundle(path, size, report.present, report.missing)


def load_bundle(path: Path, state: PlatformState) -> list[str]:
    """Load the archive into Docker and record it for the k3d engine; the tags loaded."""
    path = path.expanduser().resolve()
    tags = host.load_images(path)
    state.ensure()
    data: dict[str, Any] = state.load()
    data[STATE_KEY] = str(path)
    state.save(data)
    return tags


def recorded_bundle(state: PlatformState) -> Path | None:
    """The archive `platform up --images` recorded for this platform, if it still exists."""
    if not state.exists():
        return None
    recorded = state.load().get(STATE_KEY)
    if not recorded:
        return None
    path = Path(str(recorded))
    return path if path.is_file() else None


def record_charts(path: Path, state: PlatformState) -> bool:
    """Record FILE.charts.tar beside the image archive `path`, if there is one, for the
    reconciler stage to preload; whether there was."""
    from bootstrap.docker.charts_bundle import charts_path

    charts = charts_path(path.expanduser().resolve())
    if not charts.is_file():
        return False
    state.ensure()
    data: dict[str, Any] = state.load()
    data[CHARTS_KEY] = str(charts)
    state.save(data)
    return True


def recorded_charts(state: PlatformState) -> Path | None:
    """The chart bundle `platform up --images` recorded, if it still exists."""
    if not state.exists():
        return None
    from bootstrap.docker.charts_bundle import charts_path

    recorded = state.load().get(CHARTS_KEY)
    path = Path(str(recorded)) if recorded else None
    if path is None:  # an image archive recorded before charts were bundled
        images = recorded_bundle(state)
        path = charts_path(images) if images is not None else None
    return path if path is not None and path.is_file() else None


def load_into_engine(settings: Settings, state: PlatformState, path: Path) -> str:
    """`platform up --images FILE`: load the bundle for this platform's engine; a summary.
    The charts beside it are recorded for any engine (they go in through the API)."""
    charts = record_charts(path, state)
    if settings.engine != "k3d":
        if charts:
            return (
                f"recorded the charts beside {path.name} for preloading; the images are not "
                f"loaded: engine {settings.engine!r} takes them from you (load them into "
                "your cluster's nodes or registry)"
            )
        raise PermanentError(
            f"--images loads images into the k3d engine, not into engine {settings.engine!r}",
            hint="load the images into your cluster's nodes or registry yourself, or drop --images",
        )
    tags = load_bundle(path, state)
    pinned_refs = {normalise(i.reference) for i in all_images()}
    found = sorted(t for t in tags if normalise(t) in pinned_refs)
    return (
        f"loaded {len(tags)} images into Docker ({len(found)} pinned); k3s imports the "
        "bundle from its airgap images directory at start"
        + ("; the charts beside it are preloaded by the reconciler stage" if charts else "")
    )
