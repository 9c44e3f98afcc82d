"""The offline bundle's charts: what the seeded repository references, saved beside the
image archive as FILE.charts.tar, and read back for preloading.

`platform images save FILE` (bootstrap/cli/image.py) renders the repository the platform
would seed (template + packages for the current settings), finds every Application whose
source is a chart from an HTTP(S) chart repository or an OCI registry, and fetches each
with the reconciler's own ChartCache (one implementation: digest-checked, bounded). The
tar holds one entry per chart plus `index.json` (repoURL, chart, version, sha256, file).
The image archive itself is untouched (k3s reads it from its airgap directory).

`platform up` records the tar (bundle.py) and the reconciler stage preloads each chart
as a ConfigMap (stacks/reconciler/sources/preload.py holds that format).
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bootstrap.config import Settings
from stacks.errors import PermanentError, PlatformError
from stacks.reconciler.sources.charts import CHART_BYTES, ChartCache, open_version
from stacks.reconciler.sources.preload import MAX_BYTES, configmap_name
from stacks.reconciler.sources.repos import RepoAccess

INDEX = "index.json"
MAX_CHARTS = 500  # a bundle read back is bounded, whoever wrote it


@dataclass(frozen=True)
class ChartRef:
    """A chart an Application of the seeded repository asks for."""

    repo: str
    chart: str
    version: str  # as written: may be open ("*")
    app: str


@dataclass(frozen=True)
class BundledChart:
    repo: str
    chart: str
    version: str  # exact
    sha256: str
    data: bytes = b""


@dataclass(frozen=True)
class ChartsSaved:
    path: Path | None  # None: nothing to save
    saved: tuple[BundledChart, ...]
    missing: tuple[tuple[ChartRef, str], ...]  # (what, why and the fix)
    resolved: tuple[tuple[ChartRef, str], ...]  # open versions, and what they became


def charts_path(images: Path) -> Path:
    """FILE.charts.tar beside the image archive FILE."""
    return images.with_name(images.name + ".charts.tar")


def chart_references(files: Mapping[str, bytes]) -> list[ChartRef]:
    """Every chart (repository, chart, version) an Application in `files` references
    from an HTTP(S) chart repository or OCI registry, once each."""
    from bootstrap.gitops.repo import applications

    found: dict[tuple[str, str, str], ChartRef] = {}
    for _path, app in applications(files):
        spec = app.get("spec") or {}
        source = spec.get("source") if isinstance(spec, dict) else None
        if not isinstance(source, dict):
            continue
        repo, chart = str(source.get("repoURL") or ""), str(source.get("chart") or "")
        if not chart or not repo.startswith(("http://", "https://", "oci://")):
            continue
        version = str(source.get("targetRevision") or "")
        name = str((app.get("metadata") or {}).get("name") or "")
        found.setdefault((repo.rstrip("/"), chart, version), ChartRef(repo, chart, version, name))
    return list(found.values())


def seeded_references(settings: Settings, workdir: Path) -> list[ChartRef]:
    """The chart references of the repository `platform up` would seed now."""
    from bootstrap.gitops.packages import packages_of, render_packages
    from bootstrap.gitops.repo import omitted_components, platform_values, render
    from bootstrap.gitops.template import template_source

    source = template_source(settings)
    directory, _label = source.materialise(workdir)
    values = platform_values(settings)
    files = render(values, omitted_components(settings), directory, source.label)
    files.update(render_packages(packages_of(settings), values))
    return chart_references(files)


def save_charts(path: Path, refs: list[ChartRef], helm: str | None) -> ChartsSaved:
    """Fetch each referenced chart (network only; no credentials) into the tar `path`.
    `helm` is the binary OCI pulls need (None: OCI charts are named missing)."""
    saved: dict[tuple[str, str, str], BundledChart] = {}
    missing: list[tuple[ChartRef, str]] = []
    resolved: list[tuple[ChartRef, str]] = []
    with tempfile.TemporaryDirectory(prefix="platform-charts-") as scratch:
        cache = ChartCache(Path(scratch), helm or "helm")
        for ref in refs:
            if ref.repo.startswith("oci://") and helm is None:
                missing.append(
                    (
                        ref,
                        "pulling an OCI chart needs `helm` on this machine: install helm "
                        "(https://helm.sh/docs/intro/install/), then save again",
                    )
                )
                continue
            try:
                version = cache.resolve(ref.repo, ref.chart, ref.version, RepoAccess)
                if open_version(ref.version):
                    resolved.append((ref, version))
                key = (ref.repo.rstrip("/"), ref.chart, version)
                if key in saved:
                    continue
                data = cache.fetch_archive(ref.repo, ref.chart, version, RepoAccess)
            except PlatformError as error:
                missing.append((ref, f"{error}; fetch it on a connected machine, then save again"))
                continue
            if len(data) > MAX_BYTES:
                missing.append(
                    (
                        ref,
                        f"{len(data) // 1024} KiB, over the {MAX_BYTES // 1024} KiB a "
                        "preloaded chart may have (a ConfigMap holds 1 MiB); the cluster "
                        "needs to reach its repository",
                    )
                )
                continue
            sha = hashlib.sha256(data).hexdigest()
            saved[key] = BundledChart(ref.repo.rstrip("/"), ref.chart, version, sha, data)
    if not saved:
        path.unlink(missing_ok=True)  # a tar from an earlier save would be stale
        return ChartsSaved(None, (), tuple(missing), tuple(resolved))
    write_charts(path, list(saved.values()))
    return ChartsSaved(path, tuple(saved.values()), tuple(missing), tuple(resolved))


def write_charts(path: Path, charts: list[BundledChart]) -> None:
    """The tar: one `charts/<name>.tgz` per chart, then index.json naming each."""
    index: list[dict[str, str]] = []
    temp = path.with_name(path.name + ".tmp")
    with tarfile.open(temp, "w") as tar:
        for chart in charts:
            member = f"charts/{configmap_name(chart.repo, chart.chart, chart.version)}.tgz"
            _add(tar, member, chart.data)
            index.append(
                {
                    "repoURL": chart.repo,
                    "chart": chart.chart,
                    "version": chart.version,
                    "sha256": chart.sha256,
                    "file": member,
                }
            )
        _add(tar, INDEX, json.dumps({"charts": index}, indent=2).encode())
    shutil.move(temp, path)


def read_charts(path: Path) -> list[BundledChart]:
    """The charts of a bundle tar, each checked against its sha256 (PermanentError for
    a tar that is not one, or a chart whose digest does not match)."""
    try:
        with tarfile.open(path, "r:") as tar:
            index = _member(tar, INDEX, 1024 * 1024)
            try:
                entries: Any = json.loads(index)["charts"]
            except (ValueError, KeyError, TypeError) as error:
                raise PermanentError(f"{path}: {INDEX} is not a chart index") from error
            if not isinstance(entries, list) or len(entries) > MAX_CHARTS:
                raise PermanentError(f"{path}: {INDEX} lists no charts, or over {MAX_CHARTS}")
            out: list[BundledChart] = []
            for entry in entries:
                if not isinstance(entry, dict):
                    raise PermanentError(f"{path}: {INDEX} has an entry that is no object")
                fields = {
                    k: str(entry.get(k) or "")
                    for k in ("repoURL", "chart", "version", "sha256", "file")
                }
                data = _member(tar, fields["file"], CHART_BYTES)
                if hashlib.sha256(data).hexdigest() != fields["sha256"].lower():
                    raise PermanentError(
                        f"{path}: chart {fields['chart']} {fields['version']} does not match "
                        "its sha256 in the index; the bundle was not used",
                        hint="save the bundle again with `platform images save`",
                    )
                out.append(
                    BundledChart(
                        fields["repoURL"],
                        fields["chart"],
                        fields["version"],
                        fields["sha256"].lower(),
                        data,
                    )
                )
            return out
    except (tarfile.TarError, OSError) as error:
        raise PermanentError(f"{path} is not a chart bundle: {error}") from error


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def _member(tar: tarfile.TarFile, name: str, limit: int) -> bytes:
    try:
        info = tar.getmember(name)
    except KeyError as error:
        raise PermanentError(f"the chart bundle has no {name!r}") from error
    if not info.isfile() or info.size > limit:
        raise PermanentError(f"the chart bundle's {name!r} is no file, or over {limit} bytes")
    handle = tar.extractfile(info)
    if handle is None:
        raise PermanentError(f"the chart bundle's {name!r} cannot be read")
    return handle.read(limit + 1)[: limit + 1]
