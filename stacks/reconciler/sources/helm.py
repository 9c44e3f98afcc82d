"""`helm template` for Argo CD's `source.helm` fields, without cluster access.

Values are layered as Argo CD layers them: the chart's values.yaml, then `valueFiles` in
order (paths relative to the chart; they may reach elsewhere in the same repository but
never out of it, and URLs are refused), then `values` (or `valuesObject`, which wins when
both are set) written to a file, then `parameters` as --set / --set-string. CRDs in the
chart's crds/ directory are rendered unless `skipCrds`. The release is named after the
Application unless `releaseName` says otherwise, and --namespace is the destination's.

`split_output` cuts helm's output at its `# Source:` comments so a problem names the
template that made the object. Called by renderer.py.
"""

from __future__ import annotations

import re
from pathlib import Path

from stacks.reconciler.render import RenderError, RenderProblem
from stacks.reconciler.source import SourceFile
from stacks.reconciler.sources.run import run_tool
from stacks.reconciler.sources.spec import HelmOptions

_SOURCE = re.compile(rb"^# Source: (.+)$", re.M)


def _value_file(chart: Path, root: Path, name: str, shown: str) -> Path | None:
    if "://" in name:
        raise RenderError(
            [
                RenderProblem(
                    shown,
                    0,
                    f"valueFiles names the URL {name[:200]!r}; value files "
                    "are read from the same repository as the chart",
                )
            ]
        )
    target = (
        (chart / name).resolve()
        if not name.startswith("/")
        else (root / name.lstrip("/")).resolve()
    )
    base = root.resolve()
    if target != base and base not in target.parents:
        raise RenderError(
            [RenderProblem(shown, 0, f"the value file {name[:200]!r} is outside the repository")]
        )
    return target if target.is_file() else None


def template_argv(
    binary: str,
    chart: Path,
    root: Path,
    options: HelmOptions,
    *,
    release: str,
    namespace: str,
    scratch: Path,
    shown: str,
    kube_version: str = "",
) -> list[str]:
    """The `helm template` command for `chart` (a directory) with Argo CD's layering;
    `kube_version` is the destination's (Argo CD passes it too), for the chart's
    kubeVersion constraint and .Capabilities.KubeVersion."""
    argv = [binary, "template", options.release_name or release, str(chart)]
    if namespace:
        argv += ["--namespace", namespace]
    if kube_version:
        argv += ["--kube-version", kube_version]
    if not options.skip_crds:
        argv.append("--include-crds")
    for name in options.value_files:
        found = _value_file(chart, root, name, shown)
        if found is None:
            if options.ignore_missing_value_files:
                continue
            raise RenderError(
                [
                    RenderProblem(
                        shown,
                        0,
                        f"the value file {name[:200]!r} does not exist "
                        "(set source.helm.ignoreMissingValueFiles to skip missing ones)",
                    )
                ]
            )
        argv += ["--values", str(found)]
    inline = options.values_object or options.values
    if inline:
        # JSON is YAML: valuesObject is written as its JSON text.
        path = scratch / "inline-values.yaml"
        path.write_text(inline)
        argv += ["--values", str(path)]
    for parameter in options.parameters:
        flag = "--set-string" if parameter.force_string else "--set"
        argv += [flag, f"{parameter.name}={parameter.value}"]
    return argv


def template(
    argv: list[str], *, cwd: Path, env: dict[str, str], timeout: float, max_output: int, what: str
) -> bytes:
    return run_tool(
        argv, cwd=cwd, env=env, timeout=timeout, max_output=max_output, what=what
    ).stdout


def split_output(output: bytes, prefix: str) -> list[SourceFile]:
    """Helm's output as one file per `# Source:` template (named `prefix/<template>`),
    documents in their order; what precedes the first comment keeps `prefix`."""
    files: list[SourceFile] = []
    starts = [m for m in _SOURCE.finditer(output)]
    if not starts:
        return [SourceFile(prefix, output)] if output.strip() else []
    head = output[: starts[0].start()]
    if head.strip(b"-\n "):
        files.append(SourceFile(prefix, head))
    merged: dict[str, list[bytes]] = {}
    for index, match in enumerate(starts):
        end = starts[index + 1].start() if index + 1 < len(starts) else len(output)
        template_name = match.group(1).decode(errors="replace").strip()
        # The chart's own directory name leads the path; the template path follows it.
        tail = template_name.split("/", 1)[1] if "/" in template_name else template_name
        name = f"{prefix}/{tail}"
        merged.setdefault(name, []).append(output[match.start() : end])
    for name, parts in merged.items():
        files.append(SourceFile(name, b"\n---\n".join(parts)))
    return files
