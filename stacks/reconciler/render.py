"""Render: the files at an Application's path -> Kubernetes objects. Pure, no I/O.

Multi-document YAML and JSON files; `kind: List` is flattened. Every object keeps the
file and line it came from, and every error names them ("apps/web.yaml:12: ..."), so a
status condition points a person at the line to fix. A render either succeeds for every
file or fails as a whole: the reconciler never applies or prunes from half a render.

A render is bounded, because its input is whatever anyone pushed: file size, total bytes,
number of documents and objects (`Limits`), and what each object and the whole render
expand to once YAML aliases are resolved. Aliases stay shared when loaded, so a 500-byte
"billion laughs" file loads in microseconds and only explodes when serialised; the sizes
are measured on the shared graph (each shared node once) before anything serialises, and
a render over a bound fails only its Application, naming the file.

Called by the reconciler's controller and `platform diff`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from stacks.errors import PermanentError
from stacks.kube.objects import KubeObject, ObjectRef
from stacks.reconciler.hooks import is_hook_object
from stacks.reconciler.loader import DuplicateKey, LoadError, load_json, load_yaml

MiB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """Bounds on one render. The defaults sit well above real platforms (the API server
    refuses requests over 3 MiB, so no single object is near 4 MiB) and well below the
    reconciler's 256Mi memory limit."""

    file_bytes: int = 4 * MiB
    total_bytes: int = 8 * MiB  # Argo CD's combined-manifests default is 10M
    files: int = 2000
    # Documents and objects, counted together. An Application of 10,000 objects is
    # supported and tested (issue 14); the byte bounds are what keep memory in check.
    objects: int = 20_000
    object_bytes: int = 4 * MiB  # one object as JSON, aliases expanded
    render_bytes: int = 32 * MiB  # every object as JSON, aliases expanded
    depth: int = 100  # nesting; json.dumps and deepcopy recurse


LIMITS = Limits()

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
    # generateName instead of a name is allowed for hooks only (a new object per sync).
    if not isinstance(metadata, dict) or not (
        metadata.get("name") or (metadata.get("generateName") and is_hook_object(obj))
    ):
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


def _size(n: int) -> str:
    return f"{n / MiB:.0f} MiB" if n >= MiB else f"{n / 1024:.0f} KiB" if n >= 1024 else f"{n} B"


def _position(content: bytes, offset: int) -> str:
    line = content.count(b"\n", 0, offset) + 1
    return f"byte {offset}, line {line}"


class _TooBig(Exception):
    pass


def _measure(root: Any, memo: dict[int, tuple[int, int]]) -> tuple[int, int]:
    """(JSON size estimate, nesting depth) of `root` with aliases expanded.

    Each shared dict/list is measured once (`memo`, shared across a render), so the
    cost is the size of the file, not of the expansion. Iterative: the depth of the
    input must not become the depth of Python's stack. Raises _TooBig on a cycle
    (`&a [*a]`), which no JSON can hold.
    """
    stack: list[tuple[Any, bool]] = [(root, False)]
    active: set[int] = set()  # entered, not finished: exactly the current path
    while stack:
        node, finished = stack.pop()
        ident = id(node)
        children = node.values() if isinstance(node, dict) else node
        if finished:
            active.discard(ident)
            size, depth = 2, 1
            if isinstance(node, dict):
                size += sum(len(str(k)) + 4 for k in node)
            for child in children:
                if isinstance(child, (dict, list)):
                    child_size, child_depth = memo[id(child)]
                else:
                    child_size, child_depth = _scalar_size(child), 0
                size += child_size + 1
                depth = max(depth, child_depth + 1)
            memo[ident] = (size, depth)
            continue
        if ident in memo:
            continue
        if ident in active:
            raise _TooBig("refers to itself through a YAML alias, so it never ends")
        active.add(ident)
        stack.append((node, True))
        stack.extend((c, False) for c in children if isinstance(c, (dict, list)))
    if isinstance(root, (dict, list)):
        return memo[id(root)]
    return _scalar_size(root), 0


def _scalar_size(value: Any) -> int:
    return len(value) + 2 if isinstance(value, str) else len(str(value))


def _load(
    file: str, content: bytes, problems: list[RenderProblem], budget: list[int]
) -> list[tuple[int, Any]]:
    """(line, value) of each document in one file; problems name file:line."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as error:
        problems.append(
            RenderProblem(
                file,
                content.count(b"\n", 0, error.start) + 1,
                f"the file is not UTF-8 text ({error.reason} at {_position(content, error.start)}); "
                "save it as UTF-8",
            )
        )
        return []
    if file.endswith(".json"):
        budget[0] -= 1
        try:
            return [(1, load_json(text))]
        except LoadError as error:
            problems.append(_problem(file, 1, error))
            return []
    found: list[tuple[int, Any]] = []
    for start, doc in _documents(text):
        budget[0] -= 1
        if budget[0] < 0:
            return found  # render() reports the count
        try:
            found.append((_first_content_line(start, doc), load_yaml(doc)))
        except LoadError as error:
            problems.append(_problem(file, start, error))
    return found


def _problem(file: str, start: int, error: LoadError) -> RenderProblem:
    line = start + error.line if error.line >= 0 else 0
    message = error.message
    if isinstance(error, DuplicateKey):
        message += (
            f" (first at line {start + error.first_line}); a repeated key silently replaces "
            "the earlier value: keep only one"
        )
    return RenderProblem(file, line, message)


def too_many_files(file: str, limits: Limits) -> RenderProblem:
    return RenderProblem(
        file,
        0,
        f"the path holds more than {limits.files} YAML/JSON files; "
        "split it into several Applications",
    )


def input_problem(file: str, size: int, total: int, limits: Limits) -> RenderProblem | None:
    """The bound a file of `size` bytes breaks, `total` counting it; source.py asks too,
    before reading the bytes."""
    if size > limits.file_bytes:
        return RenderProblem(
            file,
            0,
            f"the file is {_size(size)}, over the {_size(limits.file_bytes)} "
            "limit for one file; split it",
        )
    if total > limits.total_bytes:
        return RenderProblem(
            file,
            0,
            f"the files up to this one add up to {_size(total)}, over the "
            f"{_size(limits.total_bytes)} limit for one Application; split the path "
            "into several Applications",
        )
    return None


def render(files: Iterable[tuple[str, bytes]], limits: Limits = LIMITS) -> list[Manifest]:
    """Every object in `files` (path, content), in file order; raises RenderError."""
    problems: list[RenderProblem] = []
    manifests: list[Manifest] = []
    total = 0
    budget = [limits.objects]
    for count, (file, content) in enumerate(files, start=1):
        if count > limits.files:
            problems.append(too_many_files(file, limits))
            break
        total += len(content)
        problem = input_problem(file, len(content), total, limits)
        if problem is not None:
            problems.append(problem)
            break
        for line, obj in _load(file, content, problems, budget):
            manifests.extend(_check(obj, file, line, problems))
        if budget[0] < 0 or len(manifests) > limits.objects:
            problems.append(
                RenderProblem(
                    file,
                    0,
                    f"the path holds more than {limits.objects} documents or objects (counting "
                    "up to this file); split it into several Applications",
                )
            )
            break
    if not problems:
        _bound_expansion(manifests, limits, problems)
    if problems:
        raise RenderError(problems)
    seen: dict[tuple[str, str, str, str], Manifest] = {}
    for manifest in manifests:
        key = ObjectRef.of(manifest.obj).key
        if not key[3]:  # a generateName hook: its generateName names it
            key = (*key[:3], str(manifest.obj["metadata"].get("generateName")))
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


def _bound_expansion(
    manifests: list[Manifest], limits: Limits, problems: list[RenderProblem]
) -> None:
    memo: dict[int, tuple[int, int]] = {}
    total = 0
    for manifest in manifests:
        try:
            size, depth = _measure(manifest.obj, memo)
        except _TooBig as error:
            problems.append(RenderProblem(manifest.file, manifest.line, f"the object {error}"))
            return
        if size > limits.object_bytes:
            problems.append(
                RenderProblem(
                    manifest.file,
                    manifest.line,
                    f"the object expands to about {_size(size)} once YAML aliases (*name) are "
                    f"resolved, over the {_size(limits.object_bytes)} limit for one object; "
                    "write it without nested aliases",
                )
            )
            return
        if depth > limits.depth:
            problems.append(
                RenderProblem(
                    manifest.file,
                    manifest.line,
                    f"the object is nested {depth} levels deep, over the limit of "
                    f"{limits.depth}; flatten it",
                )
            )
            return
        total += size
        if total > limits.render_bytes:
            problems.append(
                RenderProblem(
                    manifest.file,
                    manifest.line,
                    f"the objects up to this one expand to about {_size(total)} once YAML "
                    f"aliases (*name) are resolved, over the {_size(limits.render_bytes)} "
                    "limit for one Application; write them without nested aliases or split "
                    "the path into several Applications",
                )
            )
            return
