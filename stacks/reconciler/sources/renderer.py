"""Which tool an Application's source needs, and the render with it.

Argo CD's rules, in its order: `source.chart` is a chart from a Helm repository or an
OCI registry; an explicit `source.helm` or `source.kustomize` names the tool (both is an
error); otherwise a path holding kustomization.yaml, kustomization.yml or Kustomization
is Kustomize, one holding Chart.yaml is Helm, and anything else is a directory of plain
manifests (render.py, unchanged).

A git chart or kustomization is rendered from the whole commit written to a scratch
directory (a kustomization's `../base` and a chart's value files may be anywhere in the
repository), removed after the render. The tool's YAML comes back as `RenderedFile`s,
which desired.py hands to render.py like files from git, with the output cap as the size
bound.

Settings (environment of `platform run reconciler`, as its flags are):
    PLATFORM_RECONCILER_HELM, PLATFORM_RECONCILER_KUSTOMIZE   the binaries (default: PATH)
    PLATFORM_RECONCILER_RENDER_TIMEOUT     seconds per tool run (default 60)
    PLATFORM_RECONCILER_RENDER_MAX_BYTES   output cap of one render (default 8 MiB)
    PLATFORM_RECONCILER_KUSTOMIZE_REMOTE_BASES   "true" allows remote bases (default off)

Called by stacks.reconciler.desired.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from stacks.errors import PermanentError
from stacks.reconciler.render import LIMITS, RenderError, RenderProblem
from stacks.reconciler.source import GitCache, SourceFile, redact_url
from stacks.reconciler.sources import helm, kustomize
from stacks.reconciler.sources.charts import ChartCache, helm_env
from stacks.reconciler.sources.preload import PreloadLookup
from stacks.reconciler.sources.repos import RepoAccess
from stacks.reconciler.sources.run import tool_env
from stacks.reconciler.sources.spec import HelmOptions, KustomizeOptions

DIRECTORY, KUSTOMIZE, HELM, CHART = "directory", "kustomize", "helm", "chart"
CHART_FILE = "Chart.yaml"
# What a chart archive may unpack to (helm's own bound on a decompressed chart is 100 MiB).
UNPACKED_BYTES = 100 * 1024 * 1024
UNPACKED_FILES = 10_000


class RenderedFile(SourceFile):
    """A tool's output: render.py bounds it by the render cap, not the one-file cap."""


@dataclass(frozen=True)
class RenderSettings:
    helm: str = "helm"
    kustomize: str = "kustomize"
    timeout: float = 60.0
    max_output: int = LIMITS.total_bytes
    allow_remote_bases: bool = False
    export_bytes: int = 64 * 1024 * 1024  # a repository written out for one render
    export_files: int = 20_000

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RenderSettings:
        env = os.environ if environ is None else environ
        prefix = "PLATFORM_RECONCILER_"
        try:
            timeout = float(env.get(prefix + "RENDER_TIMEOUT") or cls.timeout)
            max_output = int(env.get(prefix + "RENDER_MAX_BYTES") or cls.max_output)
        except ValueError as error:
            raise PermanentError(
                f"{prefix}RENDER_TIMEOUT or RENDER_MAX_BYTES is not a number: {error}"
            ) from error
        remote = env.get(kustomize.REMOTE_SETTING, "").strip().lower() in ("1", "true", "yes")
        return cls(
            helm=env.get(prefix + "HELM") or "helm",
            kustomize=env.get(prefix + "KUSTOMIZE") or "kustomize",
            timeout=max(timeout, 1.0),
            max_output=max(max_output, 1024),
            allow_remote_bases=remote,
        )


def kind_of(
    chart: str,
    helm_options: HelmOptions | None,
    kustomize_options: KustomizeOptions | None,
    names: list[str],
) -> str:
    """The tool a source needs (Argo CD's detection); `names` are the path's entries."""
    if chart:
        return CHART
    if helm_options is not None and kustomize_options is not None:
        raise PermanentError(
            "spec.source sets both helm and kustomize; an Application renders with one tool",
            hint="remove one of spec.source.helm and spec.source.kustomize",
        )
    if kustomize_options is not None:
        return KUSTOMIZE
    if helm_options is not None:
        return HELM
    if any(n in kustomize.KUSTOMIZATION_NAMES for n in names):
        return KUSTOMIZE
    if CHART_FILE in names:
        return HELM
    return DIRECTORY


class Renderer:
    """Renders kustomizations and charts into RenderedFiles, in scratch under `scratch`."""

    def __init__(
        self,
        git: GitCache,
        scratch: Path,
        settings: RenderSettings,
        preload: PreloadLookup | None = None,
    ) -> None:
        self.git = git
        self.settings = settings
        self.work = scratch / "work"
        self.kube_version = ""  # the API server's, set by desired.py; "" = helm's default
        self.charts = ChartCache(scratch / "charts", settings.helm, preload)
        # What a killed process left mid-render (each render removes its own).
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(parents=True, exist_ok=True)
        self.charts.root.mkdir(parents=True, exist_ok=True)

    def _scratch(self) -> tempfile.TemporaryDirectory[str]:
        return tempfile.TemporaryDirectory(dir=self.work, prefix="render-")

    def render_git(
        self,
        kind: str,
        url: str,
        revision: str,
        path: str,
        *,
        release: str,
        namespace: str,
        helm_options: HelmOptions | None,
        kustomize_options: KustomizeOptions | None,
    ) -> list[SourceFile]:
        """Render the kustomization or chart at `path` in commit `revision`."""
        shown = path
        with self._scratch() as scratch:
            base = Path(scratch)
            root = base / "repo"
            self.git.export(
                url, revision, root, self.settings.export_bytes, self.settings.export_files
            )
            directory = root if path in ("", ".") else root / path
            if kind == KUSTOMIZE:
                return self._kustomize(root, directory, base, kustomize_options, shown)
            return self._helm(
                directory, root, base, helm_options or HelmOptions(), release, namespace, shown
            )

    def _kustomize(
        self, root: Path, directory: Path, base: Path, options: KustomizeOptions | None, shown: str
    ) -> list[SourceFile]:
        if kustomize.kustomization_file(directory) is None:
            raise RenderError(
                [
                    RenderProblem(
                        shown,
                        0,
                        "source.kustomize is set, but the path holds no "
                        "kustomization.yaml, kustomization.yml or Kustomization",
                    )
                ]
            )
        kustomize.check_references(directory, root, self.settings.allow_remote_bases, shown)
        env = _tool_env(base, offline=not self.settings.allow_remote_bases)
        output = kustomize.build(
            self.settings.kustomize,
            directory,
            options,
            env=env,
            timeout=self.settings.timeout,
            max_output=self.settings.max_output,
            shown=shown,
        )
        return [RenderedFile(f"{shown} (kustomize build)", output)] if output.strip() else []

    def _helm(
        self,
        chart: Path,
        root: Path,
        base: Path,
        options: HelmOptions,
        release: str,
        namespace: str,
        shown: str,
    ) -> list[SourceFile]:
        if not (chart / CHART_FILE).is_file():
            raise RenderError(
                [RenderProblem(shown, 0, "source.helm is set, but the path holds no Chart.yaml")]
            )
        argv = helm.template_argv(
            self.settings.helm,
            chart,
            root,
            options,
            release=release,
            namespace=namespace,
            scratch=base,
            shown=shown,
            kube_version=self.kube_version,
        )
        output = helm.template(
            argv,
            cwd=base,
            env=helm_env(base / "helm-home"),
            timeout=self.settings.timeout,
            max_output=self.settings.max_output,
            what=f"helm template {shown}",
        )
        return [RenderedFile(f.path, f.content) for f in helm.split_output(output, shown)]

    def render_chart(
        self,
        repo: str,
        chart: str,
        version: str,
        access: Callable[[], RepoAccess],
        *,
        release: str,
        namespace: str,
        options: HelmOptions | None,
    ) -> list[SourceFile]:
        """Render chart `chart` at `version` from a Helm repository or OCI registry."""
        archive = self.charts.get(repo, chart, version, access)
        shown = f"{chart}-{version}"
        with self._scratch() as scratch:
            base = Path(scratch)
            unpacked = base / "chart"
            _unpack(archive, unpacked, shown)
            dirs = [d for d in unpacked.iterdir() if (d / CHART_FILE).is_file()]
            if len(dirs) != 1:
                raise RenderError(
                    [RenderProblem(shown, 0, f"the archive from {redact_url(repo)} holds no chart")]
                )
            return self._helm(
                dirs[0], dirs[0], base, options or HelmOptions(), release, namespace, shown
            )


def _unpack(archive: Path, dest: Path, shown: str) -> None:
    """Unpack a chart archive, bounded, links and absolute names refused (tar "data")."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = tar.getmembers()
            size = sum(m.size for m in members)
            if len(members) > UNPACKED_FILES or size > UNPACKED_BYTES:
                raise RenderError(
                    [
                        RenderProblem(
                            shown,
                            0,
                            f"the chart unpacks to {len(members)} files, "
                            f"{size // 2**20} MiB, over the limit of {UNPACKED_FILES} files "
                            f"and {UNPACKED_BYTES // 2**20} MiB",
                        )
                    ]
                )
            tar.extractall(dest, filter="data")
    except (tarfile.TarError, OSError, EOFError) as error:
        archive.unlink(missing_ok=True)  # fetched again next time
        raise RenderError(
            [RenderProblem(shown, 0, f"the chart archive cannot be read: {error}")]
        ) from error


def _tool_env(home: Path, offline: bool) -> dict[str, str]:
    env = tool_env(home)
    if offline:
        # The reference walk refuses remote bases; this makes anything it did not
        # foresee (a URL in a field it does not read) fail instead of fetching.
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
            env[name] = "http://127.0.0.1:9"
        env.pop("NO_PROXY", None)
        env.pop("no_proxy", None)
        env["GIT_ALLOW_PROTOCOL"] = "none"
    return env
