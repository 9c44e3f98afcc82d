"""`platform image build` and `platform images list|save`: the component image and the
offline image bundle.

Thin: the work is in bootstrap/docker/build.py (wheels + Docker build) and
bootstrap/docker/bundle.py (which pinned images are local, one archive of them).
Registered lazily in bootstrap/cli/main.py; nothing here imports docker at module top.
"""

from __future__ import annotations

from pathlib import Path

import click

from bootstrap.cli.common import (
    CommonArgs,
    Session,
    common_options,
    open_session,
    reported_errors,
)

MB = 1000 * 1000  # as `docker images` counts


@click.group()
def image() -> None:
    """Build the one image that holds every in-house component."""


@image.command("build")
@common_options
@click.option(
    "--base",
    default=None,
    metavar="IMAGE",
    help="Base image (Dockerfile ARG BASE) [env PLATFORM_IMAGE_BASE; default: "
    "python:3.11-slim-bookworm].",
)
@click.option("--tag", default=None, help="Image tag [default: the pinned component image].")
@click.option(
    "--source",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="Platform source checkout to build [default: the one this platform runs from].",
)
@click.option("--no-cache", is_flag=True, help="Rebuild every layer.")
def build(
    common: CommonArgs, base: str | None, tag: str | None, source: Path | None, no_cache: bool
) -> None:
    """Build the component image: `pip wheel` the project on this machine, then the
    Dockerfile with those wheels (no registry needed inside the build).

    The k3d engine imports the image into the cluster, so no registry is needed at all.
    """
    session = open_session(common, {"image.base": base})
    terminal = session.terminal
    base = session.settings.image.base or None
    with reported_errors(session):
        from bootstrap.docker.build import build_component_image
        from bootstrap.images import COMPONENT_BASE_IMAGE, COMPONENT_IMAGE

        target = tag or COMPONENT_IMAGE
        terminal.info(f"building {target} on {base or COMPONENT_BASE_IMAGE}")
        report = build_component_image(
            target, source=source, base=base, on_line=terminal.detail, nocache=no_cache
        )
        terminal.success(
            f"built {report.tag} ({report.size_bytes / MB:.0f} MB; wheels "
            f"{report.wheel_seconds:.1f}s, image {report.build_seconds:.1f}s)"
        )
        terminal.result(
            {
                "ok": True,
                "tag": report.tag,
                "id": report.image_id,
                "size_bytes": report.size_bytes,
                "wheels": report.wheels,
                "wheel_seconds": round(report.wheel_seconds, 3),
                "build_seconds": round(report.build_seconds, 3),
                "reclaimed_bytes": report.reclaimed_bytes,
            }
        )


@click.group()
def images() -> None:
    """The pinned images: which are here, and one archive of them for offline use."""


@images.command("list")
@common_options
def list_images(common: CommonArgs) -> None:
    """Every pinned image, whether Docker has it, and how to get it; and the pinned tools
    (k3d, OpenTofu) with where `platform up` gets them."""
    session = open_session(common)
    terminal = session.terminal
    with reported_errors(session):
        from bootstrap.docker.bundle import image_report
        from bootstrap.tools import TOOLS, host_platform, installed

        system, arch = host_platform()
        tool_rows: list[dict[str, object]] = [
            {
                "tool": tool.name,
                "version": tool.version,
                "installed": str(installed(tool) or ""),
                "file": tool.asset(system, arch),
                "sha256": tool.checksums.get((system, arch), ""),
                "platforms": tool.supported(),
            }
            for tool in TOOLS.values()
        ]
        terminal.table(
            ["tool", "version", "in ~/.platform/bin", "release file (SHA-256 pinned)"],
            [
                [
                    str(t["tool"]),
                    str(t["version"]),
                    "yes" if t["installed"] else "no",
                    str(t["file"]) if t["sha256"] else f"none for {system}/{arch}",
                ]
                for t in tool_rows
            ],
            title="Pinned tools (downloaded by `platform up` when missing)",
        )

        report = image_report()
        rows = [[i.reference, i.purpose, "yes", ""] for i in report.present]
        rows += [[i.reference, i.purpose, "no", i.how_to_get()] for i in report.missing]
        terminal.table(["image", "purpose", "local", "to get it"], rows, title="Pinned images")
        terminal.result(
            {
                "ok": True,
                "present": [i.reference for i in report.present],
                "missing": [i.reference for i in report.missing],
                "tools": tool_rows,
            }
        )


@images.command("save")
@common_options
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--include",
    multiple=True,
    metavar="IMAGE",
    help="Also save this image (repeatable), e.g. your own apps' images.",
)
@click.option("--require-all", is_flag=True, help="Fail (exit 1) when any pinned image is missing.")
def save(common: CommonArgs, file: Path, include: tuple[str, ...], require_all: bool) -> None:
    """Write every pinned image present here into one archive FILE, for
    `platform up --images FILE` on a machine without network. Missing images are named
    with the command that gets each."""
    session = open_session(common)
    terminal = session.terminal
    with reported_errors(session):
        from bootstrap.docker.bundle import save_bundle
        from stacks.errors import PermanentError

        bundle = save_bundle(file, extra=include)
        for saved in bundle.saved:
            terminal.detail(f"saved {saved.reference} ({saved.purpose})")
        for missing in bundle.missing:
            terminal.info(
                f"missing: {missing.reference} ({missing.purpose}): get it with "
                f"`{missing.how_to_get()}`, then save again"
            )
        terminal.success(
            f"wrote {len(bundle.saved)} images to {bundle.path} ({bundle.size_bytes / MB:.0f} MB)"
            + (f"; {len(bundle.missing)} pinned images missing" if bundle.missing else "")
        )
        charts = _save_charts(session, bundle.path)
        terminal.result(
            {
                "ok": not (require_all and bundle.missing),
                "path": str(bundle.path),
                "size_bytes": bundle.size_bytes,
                "saved": [i.reference for i in bundle.saved],
                "missing": [{"image": i.reference, "get": i.how_to_get()} for i in bundle.missing],
                "charts": charts,
            }
        )
        if require_all and bundle.missing:
            raise PermanentError(
                f"{len(bundle.missing)} pinned images are missing from the archive",
                hint="get them with the commands above on a connected machine, then save again",
            )


def _save_charts(session: Session, images: Path) -> dict[str, object]:
    """The charts the seeded repository references, into FILE.charts.tar beside the
    image archive (bootstrap/docker/charts_bundle.py); printed as the images are."""
    import shutil
    import tempfile

    from bootstrap.docker.charts_bundle import charts_path, save_charts, seeded_references

    terminal = session.terminal
    with tempfile.TemporaryDirectory(prefix="platform-template-") as workdir:
        refs = seeded_references(session.settings, Path(workdir))
    if not refs:
        return {"path": None, "saved": [], "missing": []}
    target = charts_path(images)
    saved = save_charts(target, refs, shutil.which("helm"))
    for ref, version in saved.resolved:
        terminal.info(
            f"chart {ref.chart} from {ref.repo}: targetRevision {ref.version or '(empty)'!r} "
            f"resolved to {version}, the newest in its index now; the bundle holds that one"
        )
    for chart in saved.saved:
        terminal.detail(f"saved chart {chart.chart} {chart.version} from {chart.repo}")
    for ref, why in saved.missing:
        terminal.info(
            f"missing: chart {ref.chart} {ref.version} from {ref.repo} ({ref.app}): {why}"
        )
    if saved.path is not None:
        terminal.success(
            f"wrote {len(saved.saved)} charts to {saved.path}"
            + (f"; {len(saved.missing)} charts missing" if saved.missing else "")
        )
    return {
        "path": str(saved.path) if saved.path else None,
        "saved": [
            {"repoURL": c.repo, "chart": c.chart, "version": c.version, "sha256": c.sha256}
            for c in saved.saved
        ],
        "missing": [
            {"repoURL": r.repo, "chart": r.chart, "version": r.version, "why": why}
            for r, why in saved.missing
        ],
    }
