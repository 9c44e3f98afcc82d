"""spec.ignoreDifferences: fields of managed objects that other writers own. Pure.

Argo CD's rules: `group`, `kind` (required), `name`, `namespace` pick objects; the fields
are `jsonPointers` (RFC 6901), `jqPathExpressions` and `managedFieldsManagers`.

This reconciler notices drift through the fields its own field manager owns (plan.py:
`fields_hash` of our managedFields entry, not a diff of every object). Another writer
that changes one of those fields takes it over, so our entry changes: that is drift.
A rule removes its fields from that comparison:

  - jsonPointers / jqPathExpressions: the matching paths of the object as git has it are
    turned into managedFields paths (a list item by its key, as the API server records
    it) and left out of the hash, on both sides: what we recorded and what is live.
  - managedFieldsManagers: the fields the named managers own now count as ours if git
    sets them, so a field they take over from us does not change the hash.

So a field an HPA (or any controller) changes keeps the app Synced, and self-heal does
not fight it. With the sync option `RespectIgnoreDifferences=true` the apply also keeps
the live value of those fields (Argo CD copies them from the live object into what it
applies), so a sync for another change does not reset them either.

jqPathExpressions: a subset of jq, parsed here (no jq program runs: an expression is
whatever anyone wrote into an Application, and jq can loop): `.a.b`, `."quoted key"`,
`.["key"]`, `.[0]`, `.[]`, and `select(.field == "value")` (or `!=`, a string, number,
boolean or null) joined with `|`, e.g.
`.spec.template.spec.initContainers[] | select(.name == "istio-init")`. Anything else is
refused when the Application is read (InvalidSpec), naming the expression.

Called by api.py (parsing), the controller's compare and conclude steps (hashes),
apply.py (RespectIgnoreDifferences) and inspect.py (`platform diff`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Path = tuple[str | int, ...]  # a path into a JSON object: keys and list indices
FieldPath = tuple[str, ...]  # a path into managedFields' fieldsV1 ("f:spec", "k:{...}")

MAX_RULES = 100
MAX_EXPRESSION = 500


class Select:
    """`select(.a.b == value)` / `!=` inside a jq path."""

    def __init__(self, path: Path, value: Any, equal: bool) -> None:
        self.path, self.value, self.equal = path, value, equal

    def __call__(self, item: Any) -> bool:
        found = _get(item, self.path)
        return bool(found == self.value) if self.equal else bool(found != self.value)

    def __repr__(self) -> str:  # frozen dataclasses of rules compare by this
        return f"select({self.path!r}{'==' if self.equal else '!='}{self.value!r})"

    def __eq__(self, other: object) -> bool:
        return repr(self) == repr(other)

    def __hash__(self) -> int:
        return hash(repr(self))


ALL = "[]"  # a path step: every item of a list
Step = str | int | Select


@dataclass(frozen=True)
class IgnoreRule:
    group: str
    kind: str
    name: str = ""
    namespace: str = ""
    paths: tuple[tuple[Step, ...], ...] = ()  # from jsonPointers and jqPathExpressions
    managers: tuple[str, ...] = ()

    def matches(self, group: str, kind: str, namespace: str, name: str) -> bool:
        return (
            self.group == group
            and self.kind == kind
            and (not self.name or self.name == name)
            and (not self.namespace or self.namespace == namespace)
        )


def parse_rules(raw: Any) -> tuple[IgnoreRule, ...]:
    """spec.ignoreDifferences; ValueError names the bad entry."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ValueError("ignoreDifferences must be a list")
    if len(raw) > MAX_RULES:
        raise ValueError(f"ignoreDifferences has more than {MAX_RULES} entries")
    rules = []
    for index, entry in enumerate(raw):
        where = f"ignoreDifferences[{index}]"
        if not isinstance(entry, dict) or not entry.get("kind"):
            raise ValueError(f"{where} needs a kind")
        paths: list[tuple[Step, ...]] = []
        for pointer in _strings(entry.get("jsonPointers"), f"{where}.jsonPointers"):
            paths.append(parse_pointer(pointer, where))
        for text in _strings(entry.get("jqPathExpressions"), f"{where}.jqPathExpressions"):
            paths.append(parse_jq(text, where))
        managers = tuple(
            _strings(entry.get("managedFieldsManagers"), f"{where}.managedFieldsManagers")
        )
        rules.append(
            IgnoreRule(
                group=str(entry.get("group") or ""),
                kind=str(entry["kind"]),
                name=str(entry.get("name") or ""),
                namespace=str(entry.get("namespace") or ""),
                paths=tuple(paths),
                managers=managers,
            )
        )
    return tuple(rules)


def _strings(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or any(not isinstance(v, str) for v in value):
        raise ValueError(f"{where} must be a list of strings")
    return list(value)


def parse_pointer(text: str, where: str = "") -> tuple[Step, ...]:
    """An RFC 6901 pointer ("/spec/replicas"); a number step also matches a list index."""
    if len(text) > MAX_EXPRESSION:
        raise ValueError(f"{where}: the JSON pointer is longer than {MAX_EXPRESSION} characters")
    if text == "":
        raise ValueError(f"{where}: an empty JSON pointer would ignore the whole object")
    if not text.startswith("/"):
        raise ValueError(f"{where}: the JSON pointer {text!r} must start with '/'")
    steps: list[Step] = []
    for part in text[1:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        steps.append(int(part) if part.isdigit() else part)
    return tuple(steps)


_JQ_TOKEN = re.compile(
    r"""\s*(?:
        (?P<dot>\.)
      | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<op>==|!=|\[|\]|\(|\)|\|)
    )""",
    re.VERBOSE,
)


def _tokens(text: str, where: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _JQ_TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise ValueError(f"{where}: cannot read the jq path {text!r} at character {pos}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


def parse_jq(text: str, where: str = "") -> tuple[Step, ...]:
    """The jq subset in the module docstring -> path steps; ValueError otherwise."""
    if len(text) > MAX_EXPRESSION:
        raise ValueError(f"{where}: the jq path is longer than {MAX_EXPRESSION} characters")
    tokens = _tokens(text, where)
    steps: list[Step] = []
    i = 0

    def fail(why: str) -> ValueError:
        return ValueError(
            f"{where}: jq path {text!r} is outside the supported subset ({why}); supported: "
            '.a.b, ."key", .["key"], .[0], .[], select(.k == "v"), joined with |'
        )

    def literal(kind: str, value: str) -> Any:
        if kind == "string":
            return json.loads(value)
        if kind == "number":
            return json.loads(value)
        if kind == "ident" and value in ("true", "false", "null"):
            return json.loads(value)
        raise fail(f"{value!r} is not a literal")

    def path_at(j: int) -> tuple[list[Step], int]:
        """A path of .key / ."key" / [..] steps starting at token j."""
        found: list[Step] = []
        while j < len(tokens):
            kind, value = tokens[j]
            if kind == "dot":
                j += 1
                if j < len(tokens) and tokens[j][0] in ("ident", "string"):
                    k2, v2 = tokens[j]
                    found.append(v2 if k2 == "ident" else json.loads(v2))
                    j += 1
                continue
            if kind == "op" and value == "[":
                if j + 1 < len(tokens) and tokens[j + 1] == ("op", "]"):
                    found.append(ALL)
                    j += 2
                    continue
                if j + 2 < len(tokens) and tokens[j + 2] == ("op", "]"):
                    k2, v2 = tokens[j + 1]
                    if k2 == "number" and v2.isdigit():
                        found.append(int(v2))
                    elif k2 == "string":
                        found.append(json.loads(v2))
                    else:
                        raise fail(f"index {v2!r}")
                    j += 3
                    continue
                raise fail("an unclosed [")
            break
        return found, j

    while i < len(tokens):
        kind, value = tokens[i]
        if kind == "ident" and value == "select":
            if i + 1 >= len(tokens) or tokens[i + 1] != ("op", "("):
                raise fail("select needs (")
            inner, j = path_at(i + 2)
            if j + 2 >= len(tokens) or tokens[j][0] != "op" or tokens[j][1] not in ("==", "!="):
                raise fail("select needs .field == value")
            equal = tokens[j][1] == "=="
            value_lit = literal(*tokens[j + 1])
            if tokens[j + 2] != ("op", ")"):
                raise fail("select needs a closing )")
            if any(isinstance(s, Select) or s == ALL for s in inner):
                raise fail("select compares one field")
            steps.append(
                Select(tuple(s for s in inner if not isinstance(s, Select)), value_lit, equal)
            )
            i = j + 3
        elif kind == "op" and value == "|":
            i += 1
        else:
            found, j = path_at(i)
            if j == i:
                raise fail(f"unexpected {value!r}")
            steps.extend(found)
            i = j
    if not steps:
        raise fail("it names no field")
    return tuple(steps)


# ---- evaluating rules ------------------------------------------------------------------


def _get(obj: Any, path: Sequence[Any]) -> Any:
    for step in path:
        if isinstance(obj, dict) and isinstance(step, str):
            obj = obj.get(step)
        elif isinstance(obj, list) and isinstance(step, int) and 0 <= step < len(obj):
            obj = obj[step]
        else:
            return None
    return obj


def expand(obj: Any, steps: Sequence[Step]) -> Iterator[Path]:
    """The concrete paths in `obj` that `steps` select (only paths that exist)."""

    def walk(node: Any, index: int, prefix: Path) -> Iterator[Path]:
        if index == len(steps):
            yield prefix
            return
        step = steps[index]
        if isinstance(step, Select):
            if step(node):
                yield from walk(node, index + 1, prefix)
            return
        if step == ALL:
            if isinstance(node, list):
                for i, item in enumerate(node):
                    yield from walk(item, index + 1, (*prefix, i))
            return
        if isinstance(node, dict) and isinstance(step, str) and step in node:
            yield from walk(node[step], index + 1, (*prefix, step))
        elif isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node):
            child: Any = node[step]  # a separate branch: mypy narrows each
            yield from walk(child, index + 1, (*prefix, step))
        elif isinstance(node, dict) and isinstance(step, int) and str(step) in node:
            yield from walk(node[str(step)], index + 1, (*prefix, str(step)))

    yield from walk(obj, 0, ())


def rules_for(
    rules: Iterable[IgnoreRule], group: str, kind: str, namespace: str, name: str
) -> list[IgnoreRule]:
    return [r for r in rules if r.matches(group, kind, namespace, name)]


def ignored_paths(rules: Sequence[IgnoreRule], obj: Mapping[str, Any]) -> list[Path]:
    """Every concrete path of `obj` (git's or live) that a rule's pointers select."""
    found: list[Path] = []
    for rule in rules:
        for steps in rule.paths:
            found.extend(expand(obj, steps))
    return found


# ---- managedFields ---------------------------------------------------------------------


def _leaves(tree: Any, prefix: FieldPath = ()) -> Iterator[FieldPath]:
    """Every leaf path of a fieldsV1 tree (an empty mapping is a leaf)."""
    if not isinstance(tree, dict) or not tree:
        yield prefix
        return
    for key, child in tree.items():
        yield from _leaves(child, (*prefix, str(key)))


def _entries(
    live: Mapping[str, Any], managers: Iterable[str], operations: tuple[str, ...]
) -> list[dict[str, Any]]:
    wanted = set(managers)
    return [
        e
        for e in (live.get("metadata") or {}).get("managedFields") or []
        if isinstance(e, dict) and e.get("manager") in wanted and e.get("operation") in operations
    ]


def _item_key(node: Mapping[str, Any], item: Any) -> str | None:
    """The fieldsV1 key (k:{...} or v:...) under `node` that stands for list `item`."""
    for key in node:
        if key.startswith("k:") and isinstance(item, dict):
            try:
                fields = json.loads(key[2:])
            except ValueError:
                continue
            if isinstance(fields, dict) and all(item.get(k) == v for k, v in fields.items()):
                return str(key)
        elif key.startswith("v:"):
            try:
                if json.loads(key[2:]) == item:
                    return str(key)
            except ValueError:
                continue
    return None


def to_field_path(obj: Any, path: Path, tree: Mapping[str, Any]) -> FieldPath:
    """The fieldsV1 prefix of the JSON `path` in `obj`; a list item is found by its key
    in `tree` (our managedFields), else the whole list is meant (more, never less)."""
    found: list[str] = []
    node: Any = tree
    for step in path:
        if isinstance(step, int):
            item = obj[step] if isinstance(obj, list) and 0 <= step < len(obj) else None
            key = _item_key(node, item) if isinstance(node, dict) else None
            if key is None:
                break
            found.append(key)
            node, obj = node[key], item
        else:
            found.append(f"f:{step}")
            node = node.get(f"f:{step}", {}) if isinstance(node, dict) else {}
            obj = obj.get(step) if isinstance(obj, dict) else None
    return tuple(found)


def _merge(trees: Iterable[Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for tree in trees:
        if not isinstance(tree, dict):
            continue
        for key, child in tree.items():
            merged[key] = _merge([merged.get(key), child]) if key in merged else child
    return merged


def _desired_leaves(obj: Any, prefix: FieldPath = ()) -> Iterator[FieldPath]:
    """f:-paths of git's object, descending maps only (a list is a leaf)."""
    if isinstance(obj, dict) and obj:
        for key, value in obj.items():
            yield from _desired_leaves(value, (*prefix, f"f:{key}"))
    else:
        yield prefix


def fields_hash_ignoring(
    live: Mapping[str, Any], desired: Mapping[str, Any], rules: Sequence[IgnoreRule], manager: str
) -> str:
    """Like plan.fields_hash, but blind to what `rules` ignore (module docstring)."""
    ours_entries = _entries(live, [manager], ("Apply", "Update"))
    ours_entries = [e for e in ours_entries if not e.get("subresource")]
    tree = _merge(e.get("fieldsV1") for e in ours_entries)
    paths = set(_leaves(tree)) if tree else set()
    managers = [m for rule in rules for m in rule.managers]
    if managers:
        wanted = set(_desired_leaves(desired))
        for entry in _entries(live, managers, ("Apply", "Update")):
            for leaf in _leaves(entry.get("fieldsV1") or {}):
                head: list[str] = []
                for key in leaf:
                    if not key.startswith("f:"):
                        break
                    head.append(key)
                if any(tuple(head[:n]) in wanted for n in range(1, len(head) + 1)):
                    paths.add(leaf)
    prefixes = {to_field_path(desired, p, tree) for p in ignored_paths(rules, desired)}
    prefixes.discard(())
    kept = sorted("/".join(p) for p in paths if not any(p[: len(pre)] == pre for pre in prefixes))
    if not kept:
        return ""
    return str(hashlib.sha256(json.dumps(kept).encode()).hexdigest()[:16])


def keep_live_values(
    desired: dict[str, Any], live: Mapping[str, Any], rules: Sequence[IgnoreRule]
) -> dict[str, Any]:
    """RespectIgnoreDifferences=true: `desired` with the ignored fields as they are live
    (removed where live has none); fields the rules' managers own keep their live value."""
    result: dict[str, Any] = json.loads(json.dumps(desired))
    paths = ignored_paths(rules, desired) + ignored_paths(rules, live)
    managers = [m for rule in rules for m in rule.managers]
    for entry in _entries(live, managers, ("Apply", "Update")):
        for leaf in _leaves(entry.get("fieldsV1") or {}):
            if (
                leaf
                and all(k.startswith("f:") for k in leaf)
                and leaf[0] in ("f:spec", "f:data", "f:metadata")
            ):
                paths.append(tuple(k[2:] for k in leaf))
    for path in sorted(set(paths), key=len, reverse=True):
        _copy_value(result, live, path)
    return result


_MISSING = object()


def _child(node: Any, step: str | int) -> Any:
    """node[step] when it exists, else _MISSING."""
    if isinstance(node, dict) and isinstance(step, str):
        return node.get(step, _MISSING)
    if isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node):
        return node[step]
    return _MISSING


def _copy_value(target: Any, source: Any, path: Path) -> None:
    if not path:
        return
    value: Any = source
    for step in path:
        value = _child(value, step)
        if value is _MISSING:
            break
    node: Any = target
    for step in path[:-1]:
        node = _child(node, step)
        if not isinstance(node, (dict, list)):
            return  # git has no such parent: nothing of ours to keep live
    last = path[-1]
    if isinstance(node, dict) and isinstance(last, str):
        if value is _MISSING:
            node.pop(last, None)
        else:
            node[last] = value
    elif _child(node, last) is not _MISSING and value is not _MISSING:
        node[last] = value  # a list item git has
