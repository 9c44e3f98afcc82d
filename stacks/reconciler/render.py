"""Render: the files at an Application's path -> Kubernetes objects. Pure, no I/O.

Multi-document YAML and JSON files; `kind: List` is flattened. Every object keeps the
file and line it came from, and every error names them ("apps/web.yaml:12: ..."), so a
status condition points a person at the line to fix. A render either succeeds for every
file or fails as a whole: the reconciler never applies or prunes from half a render.

Called by the reconciler's controller and `platform diff`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import yaml

from stacks.errors import PermanentError
from stacks.kube.objects import KubeObject, ObjectRef

try:
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - libyaml missing
    _Loader = yaml.SafeLoader

_SEPARATOR = re.compile(r"^---(\s|$)")


@dataclass(frozen=True)
class Manifest:
    obj: KubeObject
    file: str
    line: int

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class RenderProblem:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return (
            f"{self.file}:{self.line}: {self.message}"
            if self.line
            else f"{self.file}: {self.message}"
        )


class RenderError(PermanentError):
    """The path could not be rendered; `problems` name files and lines."""

    def __init__(self, problems: list[RenderProblem]) -> None:
        first = "; ".join(str(p) for p in problems[:3])
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        super().__init__(
            f"cannot render manifests: {first}{more}",
            hint="fix the file and line named above and push a new commit",
        )
        self.problems = problems


def _documents(text: str) -> Iterable[tuple[int, str]]:
    """(1-based first line, text) of each YAML document in `text`."""
    start = 1
    current: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if _SEPARATOR.match(line):
            yield start, "\n".join(current)
            current = []
            start = number + 1
            continue
        current.append(line)
    yield start, "\n".join(current)


def _first_content_line(start: int, text: str) -> int:
    for offset, line in enumerate(text.splitlines()):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            return start + offset
    return start


def _check(obj: Any, file: str, line: int, problems: list[RenderProblem]) -> list[Manifest]:
    if obj is None:
        return []
    if not isinstance(obj, dict):
        problems.append(
            RenderProblem(
                file,
                line,
                f"expected a Kubernetes object (a mapping), found a {type(obj).__name__}",
            )
        )
        return []
    if obj.get("kind") == "List" and isinstance(obj.get("items"), list):
        found: list[Manifest] = []
        for item in obj["items"]:
            found.extend(_check(item, file, line, problems))
        return found
    missing = [
        f for f in ("apiVersion", "kind") if not isinstance(obj.get(f), str) or not obj.get(f)
    ]
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict) or not metadata.get("name"):
        missing.append("metadata.name")
    if missing or not isinstance(metadata, dict):
        problems.append(RenderProblem(file, line, f"object has no {', '.join(missing)}"))
        return []
    for key in ("labels", "annotations"):
        values = metadata.get(key)
        if values is not None and (
            not isinstance(values, dict) or any(not isinstance(v, str) for v in values.values())
        ):
            problems.append(
                RenderProblem(file, line, f"metadata.{key} values must be strings (quote them)")
            )
            return []
    return [Manifest(obj, file, line)]


def render_file(file: str, content: bytes, problems: list[RenderProblem]) -> list[Manifest]:
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as error:
        problems.append(RenderProblem(file, 0, f"not UTF-8 text: {error.reason}"))
        return []
    if file.endswith(".json"):
        try:
            return _check(json.loads(text), file, 1, problems)
        except json.JSONDecodeError as error:
            problems.append(RenderProblem(file, error.lineno, f"invalid JSON: {error.msg}"))
            return []
    found: list[Manifest] = []
    for start, doc in _documents(text):
        try:
            obj = yaml.load(doc, Loader=_Loader)  # noqa: S506 - a safe loader
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark or error.context_mark
            line = start + (mark.line if mark else 0)
            problem = (
                " ".join(str(x) for x in (error.context, error.problem) if x) or "invalid YAML"
            )
            problems.append(RenderProblem(file, line, f"invalid YAML: {problem}"))
            continue
        except yaml.YAMLError as error:
            problems.append(RenderProblem(file, start, f"invalid YAML: {error}"))
            continue
        found.extend(_check(obj, file, _first_content_line(start, doc), problems))
    return found


def render(files: Iterable[tuple[str, bytes]]) -> list[Manifest]:
    """Every object in `files` (path, content), in file order; raises RenderError."""
    problems: list[RenderProblem] = []
    manifests: list[Manifest] = []
    for file, content in files:
        manifests.extend(render_file(file, content, problems))
    seen: dict[tuple[str, str, str, str], Manifest] = {}
    for manifest in manifests:
        key = ObjectRef.of(manifest.obj).key
        if key in seen:
            problems.append(
                RenderProblem(
                    manifest.file,
                    manifest.line,
                    f"{ObjectRef.of(manifest.obj)} is also defined at {seen[key].where}",
                )
            )
        seen[key] = manifest
    if problems:
        raise RenderError(problems)
    return manifests
