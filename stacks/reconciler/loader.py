"""Strict YAML and JSON loading for manifests: what a repository file may contain.

The stock loaders accept input that silently changes meaning or breaks later stages:
a repeated mapping key keeps the last value (`password: first, password: second`
applies `second`), YAML timestamps become `datetime` objects and `!!set`/`!!binary`
become Python values that no JSON body can carry, and conversion failures surface as
bare ValueErrors instead of YAML errors. This module refuses duplicates (as kubectl and
strict loaders do), keeps every value JSON-shaped, and turns every failure into a
`LoadError` with a line number.

Aliases (`*name`) stay shared objects here, so loading stays cheap; bounding what they
expand to is render.py's job. Called only by render.py.
"""

from __future__ import annotations

import json
import json.decoder
import json.scanner
from collections.abc import Callable
from typing import Any

import yaml
import yaml.constructor

try:
    _Base: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - libyaml missing
    _Base = yaml.SafeLoader

_MERGE = "tag:yaml.org,2002:merge"
_STR = "tag:yaml.org,2002:str"


class LoadError(Exception):
    """A document could not be loaded; `line` is 0-based within the text (-1: unknown)."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


class DuplicateKey(LoadError):
    """A mapping names one key twice; `first_line` is where it first appears (0-based)."""

    def __init__(self, line: int, key: str, first_line: int) -> None:
        super().__init__(line, f"duplicate key {key}")
        self.first_line = first_line


def _key_text(key: Any) -> str:
    text = repr(key) if not isinstance(key, str) else f"'{key}'"
    return text if len(text) <= 60 else text[:57] + "..."


class StrictLoader(_Base):  # type: ignore[misc]
    """A safe loader that refuses duplicate keys and non-JSON values."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._checked: set[int] = set()

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        # Every mapping passes through here before it is constructed or merged into
        # another one, while node.value still holds only the keys written in the file:
        # the one place where "written twice" can be told apart from "overridden by a
        # merge key".
        if id(node) not in self._checked:
            self._checked.add(id(node))
            self._refuse_duplicates(node)
        super().flatten_mapping(node)
        # Merged pairs are prepended; keep only the last pair per key (the one that
        # wins anyway) so chains of `<<: [*a, *a]` cannot grow the node list.
        seen: set[Any] = set()
        kept = []
        for key_node, value_node in reversed(node.value):
            identity = (
                (key_node.tag, key_node.value)
                if isinstance(key_node, yaml.ScalarNode)
                else id(key_node)
            )
            if identity in seen:
                continue
            seen.add(identity)
            kept.append((key_node, value_node))
        kept.reverse()
        node.value = kept

    def _refuse_duplicates(self, node: yaml.MappingNode) -> None:
        first: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE or not isinstance(key_node, yaml.ScalarNode):
                continue
            key = self.construct_object(key_node)
            try:
                if key in first:
                    raise DuplicateKey(key_node.start_mark.line, _key_text(key), first[key])
                first[key] = key_node.start_mark.line
            except TypeError:  # unhashable: the constructor reports it
                continue

    def construct_yaml_int(self, node: yaml.ScalarNode) -> Any:
        return self._number(node, super().construct_yaml_int)

    def construct_yaml_float(self, node: yaml.ScalarNode) -> Any:
        return self._number(node, super().construct_yaml_float)

    def _number(self, node: yaml.ScalarNode, construct: Callable[[Any], Any]) -> Any:
        # int()/float() raise plain ValueErrors (a 5000-digit number, `!!int abc`),
        # which carry no position; say where, and that quoting makes it a string.
        try:
            return construct(node)
        except (ValueError, OverflowError) as error:
            raise LoadError(
                node.start_mark.line,
                f"the value {_key_text(str(node.value))} is not a number this loader can "
                f"read ({str(error).split(';')[0]}); quote it to make it a string",
            ) from error

    def construct_undefined(self, node: yaml.Node) -> Any:
        raise LoadError(node.start_mark.line, f"unsupported YAML tag {node.tag!r}")

    def construct_as_text(self, node: yaml.Node) -> Any:
        # kubectl (sigs.k8s.io/yaml) hands an unquoted 2024-01-01 to the API server as
        # the string "2024-01-01"; a datetime would not even serialise to JSON.
        return self.construct_scalar(node)

    def construct_unsupported(self, node: yaml.Node) -> Any:
        tag = str(node.tag).rsplit(":", 1)[-1]
        raise LoadError(
            node.start_mark.line,
            f"the YAML tag !!{tag} has no JSON form and cannot be part of a Kubernetes object",
        )


StrictLoader.add_constructor("tag:yaml.org,2002:int", StrictLoader.construct_yaml_int)
StrictLoader.add_constructor("tag:yaml.org,2002:float", StrictLoader.construct_yaml_float)
StrictLoader.add_constructor("tag:yaml.org,2002:timestamp", StrictLoader.construct_as_text)
for _tag in ("binary", "set", "omap", "pairs"):
    StrictLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", StrictLoader.construct_unsupported)
StrictLoader.add_constructor(None, StrictLoader.construct_undefined)


def load_yaml(text: str) -> Any:
    """One YAML document as JSON-shaped Python values; raises LoadError."""
    try:
        return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - a safe loader
    except LoadError:
        raise
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        problem = " ".join(str(x) for x in (error.context, error.problem) if x) or "invalid YAML"
        raise LoadError(mark.line if mark else -1, f"invalid YAML: {problem}") from error
    except yaml.reader.ReaderError as error:
        raise LoadError(
            text.count("\n", 0, error.position),
            f"invalid YAML: the control character U+{error.character:04X} is not allowed in YAML "
            "text (quote it as an escape such as \\u0000 or remove it)",
        ) from error
    except yaml.YAMLError as error:
        raise LoadError(-1, f"invalid YAML: {error}") from error
    except (ValueError, OverflowError) as error:
        # The constructors convert scalars with int()/float(): "1" * 5000 or !!int x
        # fail there, outside any YAML error class, and carry no position.
        raise LoadError(-1, f"invalid YAML value: {error}") from error
    except RecursionError as error:
        raise LoadError(-1, "invalid YAML: nested too deeply") from error


class _StrictJSON(json.JSONDecoder):
    """json.loads that refuses duplicate keys and says at which offset they are.

    The C scanner takes object_pairs_hook but never says where an object is, so objects
    go through the pure-Python scanner with a parse_object that knows its offsets.
    """

    def __init__(self) -> None:
        super().__init__()
        self.parse_object = self._object
        self.scan_once = json.scanner.py_make_scanner(self)  # type: ignore[attr-defined]

    def _object(
        self,
        s_and_end: tuple[str, int],
        strict: bool,
        scan_once: Callable[[str, int], tuple[Any, int]],
        object_hook: Any,
        object_pairs_hook: Any,
        memo: dict[str, str] | None = None,
    ) -> tuple[dict[str, Any], int]:
        text = s_and_end[0]
        starts: list[int] = []

        def scan_value(s: str, idx: int) -> tuple[Any, int]:
            starts.append(idx)  # where each value begins: the line of its key
            return scan_once(s, idx)

        pairs, end = json.decoder.JSONObject(  # type: ignore[attr-defined]
            s_and_end, strict, scan_value, None, lambda p: p, memo
        )
        result: dict[str, Any] = {}
        first: dict[str, int] = {}
        for (key, value), start in zip(pairs, starts, strict=False):
            if key in first:
                raise DuplicateKey(
                    text.count("\n", 0, start), _key_text(key), text.count("\n", 0, first[key])
                )
            first[key] = start
            result[key] = value
        return result, end


def load_json(text: str) -> Any:
    """A JSON document; raises LoadError (lines 0-based)."""
    try:
        return _StrictJSON().decode(text)
    except json.JSONDecodeError as error:
        raise LoadError(error.lineno - 1, f"invalid JSON: {error.msg}") from error
    except RecursionError as error:
        raise LoadError(-1, "invalid JSON: nested too deeply") from error
    except (ValueError, OverflowError) as error:
        raise LoadError(-1, f"invalid JSON value: {error}") from error
