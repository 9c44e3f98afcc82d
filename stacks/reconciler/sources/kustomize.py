"""Kustomize sources: Argo CD's `source.kustomize` fields, remote bases, `kustomize build`.

Argo CD applies its fields by running `kustomize edit` in the checked-out path
(nameprefix, namesuffix, image, label, annotation, namespace) and by appending
`patches` to the kustomization file, then `kustomize build`; this module does the same
on the scratch copy renderer.py wrote, so the repository is never changed and the
result is what Argo CD would render.

Before the build, every kustomization reachable from the path through `resources`,
`bases` and `components` is read: an entry that is a URL (a remote base) is refused
unless remote bases are allowed (they fetch from the network in the middle of a render),
and an absolute path or one that climbs out of the repository is always refused (it
would read the reconciler's own files, other repositories' caches included).

Called by renderer.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from stacks.reconciler.loader import LoadError, load_yaml
from stacks.reconciler.render import RenderError, RenderProblem
from stacks.reconciler.sources.run import run_tool
from stacks.reconciler.sources.spec import KustomizeOptions, KustomizePatch

KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
REMOTE_SETTING = "PLATFORM_RECONCILER_KUSTOMIZE_REMOTE_BASES"
_WALK_LIMIT = 500  # kustomizations read per render
_URL = re.compile(
    r"^([a-z][a-z0-9+.-]*://|git@|git::|ssh:|github\.com/|gitlab\.com/|bitbucket\.org/)", re.I
)


def kustomization_file(directory: Path) -> Path | None:
    for name in KUSTOMIZATION_NAMES:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def _looks_remote(entry: str, base: Path) -> bool:
    if _URL.match(entry):
        return True
    # kustomize tries a missing local path as a repository ("host.example/org/repo"):
    # a first segment with a dot that is not there locally is such a reference.
    first, slash, _ = entry.partition("/")
    return (
        bool(slash)
        and "." in first.strip(".")
        and not entry.startswith(".")
        and not (base / entry).exists()
    )


def check_references(start: Path, root: Path, allow_remote: bool, shown: str) -> None:
    """Refuse remote bases (unless allowed) and paths out of `root`, walking every local
    kustomization reachable from `start`; RenderError names the file and the entry."""
    root = root.resolve()
    queue = [start.resolve()]
    seen: set[Path] = set()
    while queue:
        directory = queue.pop()
        if directory in seen:
            continue
        seen.add(directory)
        if len(seen) > _WALK_LIMIT:
            raise _problem(shown, f"more than {_WALK_LIMIT} kustomizations are reachable from it")
        found = kustomization_file(directory)
        if found is None:
            continue
        where = found.relative_to(root).as_posix()
        data = _read(found, where)
        for field in ("resources", "bases", "components"):
            entries = data.get(field) or []
            if not isinstance(entries, list):
                continue
            for entry in entries:
                if not isinstance(entry, str):
                    continue
                if _looks_remote(entry, directory):
                    if allow_remote:
                        continue
                    raise _problem(
                        where,
                        f"{field} names the remote base {entry[:200]!r}; remote bases are off, "
                        "since they fetch from the network during a render: vendor it into "
                        f"the repository, or set {REMOTE_SETTING}=true on the reconciler to "
                        "allow them",
                    )
                if entry.startswith("/"):
                    raise _problem(
                        where,
                        f"{field} names the absolute path {entry[:200]!r}; "
                        "use a path relative to the kustomization",
                    )
                target = (directory / entry).resolve()
                if target != root and root not in target.parents:
                    raise _problem(where, f"{field} entry {entry[:200]!r} leaves the repository")
                if target.is_dir():
                    queue.append(target)


def _read(path: Path, where: str) -> dict[str, Any]:
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except (LoadError, UnicodeDecodeError) as error:
        message = error.message if isinstance(error, LoadError) else "the file is not UTF-8 text"
        raise _problem(where, message) from error
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise _problem(where, "a kustomization must be a mapping")
    return data


def _problem(where: str, message: str) -> RenderError:
    return RenderError([RenderProblem(where, 0, message)])


def _patch_entry(patch: KustomizePatch) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    if patch.patch:
        entry["patch"] = patch.patch
    if patch.path:
        entry["path"] = patch.path
    if patch.target is not None:
        names = {
            "group": patch.target.group,
            "version": patch.target.version,
            "kind": patch.target.kind,
            "name": patch.target.name,
            "namespace": patch.target.namespace,
            "labelSelector": patch.target.label_selector,
            "annotationSelector": patch.target.annotation_selector,
        }
        entry["target"] = {k: v for k, v in names.items() if v}
    if patch.options:
        entry["options"] = dict(patch.options)
    return entry


def edit_commands(options: KustomizeOptions) -> list[list[str]]:
    """The `kustomize edit` runs Argo CD makes for these fields, in its order."""
    commands: list[list[str]] = []
    if options.name_prefix:
        commands.append(["edit", "set", "nameprefix", "--", options.name_prefix])
    if options.name_suffix:
        commands.append(["edit", "set", "namesuffix", "--", options.name_suffix])
    if options.images:
        commands.append(["edit", "set", "image", *options.images])
    if options.common_labels:
        force = ["--force"] if options.force_common_labels else []
        pairs = ",".join(f"{k}:{v}" for k, v in options.common_labels)
        commands.append(["edit", "add", "label", *force, pairs])
    if options.common_annotations:
        force = ["--force"] if options.force_common_annotations else []
        pairs = ",".join(f"{k}:{v}" for k, v in options.common_annotations)
        commands.append(["edit", "add", "annotation", *force, pairs])
    if options.namespace:
        commands.append(["edit", "set", "namespace", "--", options.namespace])
    return commands


def add_patches(directory: Path, patches: tuple[KustomizePatch, ...], shown: str) -> None:
    """Append `patches` to the kustomization's own, as Argo CD does (file rewritten)."""
    found = kustomization_file(directory)
    if found is None:
        raise _problem(shown, "holds no kustomization file")
    data = _read(found, shown)
    existing = data.get("patches") or []
    if not isinstance(existing, list):
        raise _problem(shown, "patches in the kustomization is not a list")
    data["patches"] = [*existing, *(_patch_entry(p) for p in patches)]
    found.write_text(yaml.safe_dump(data, sort_keys=False))


def build(
    binary: str,
    directory: Path,
    options: KustomizeOptions | None,
    *,
    env: dict[str, str],
    timeout: float,
    max_output: int,
    shown: str,
) -> bytes:
    """`kustomize build` of `directory` after Argo CD's edits; the YAML it prints."""
    if options is not None:
        for command in edit_commands(options):
            run_tool(
                [binary, *command],
                cwd=directory,
                env=env,
                timeout=timeout,
                max_output=1024 * 1024,
                what=f"kustomize {' '.join(command[:3])} in {shown}",
            )
        if options.patches:
            add_patches(directory, options.patches, shown)
    result = run_tool(
        [binary, "build", "."],
        cwd=directory,
        env=env,
        timeout=timeout,
        max_output=max_output,
        what=f"kustomize build {shown}",
    )
    return result.stdout
