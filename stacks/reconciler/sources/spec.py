"""Argo CD's `source.helm`, `source.kustomize` and `source.chart` as frozen values.

Pure, no I/O: `parse_helm` and `parse_kustomize` read the raw fields of an Application
(api.py calls them from `AppSpec.parse`), refuse what the renderer cannot honour with the
field named, and keep everything hashable so an `AppSpec` stays a value. `digest()`
gives the renderer a key: a change to any field renders again.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from typing import Any

from stacks.errors import PermanentError

# Bounds on what an Application may ask of a render (its spec is user input too).
MAX_ITEMS = 100  # value files, parameters, images, patches, labels
MAX_TEXT = 256 * 1024  # source.helm.values, one inline patch
_LABEL_KEY = re.compile(r"^([A-Za-z0-9.-]{1,253}/)?[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")
_HINT = "see the Helm and Kustomize section of the README for the supported fields"


@dataclass(frozen=True)
class HelmParameter:
    name: str
    value: str
    force_string: bool = False


@dataclass(frozen=True)
class HelmOptions:
    """`source.helm`: how `helm template` is called (Argo CD's field names)."""

    release_name: str = ""
    value_files: tuple[str, ...] = ()
    values: str = ""  # YAML text (source.helm.values)
    values_object: str = ""  # canonical JSON of source.helm.valuesObject; wins over values
    parameters: tuple[HelmParameter, ...] = ()
    skip_crds: bool = False
    ignore_missing_value_files: bool = False


@dataclass(frozen=True)
class PatchTarget:
    group: str = ""
    version: str = ""
    kind: str = ""
    name: str = ""
    namespace: str = ""
    label_selector: str = ""
    annotation_selector: str = ""


@dataclass(frozen=True)
class KustomizePatch:
    patch: str = ""  # inline strategic-merge or JSON6902 patch
    path: str = ""  # a patch file relative to the kustomization
    target: PatchTarget | None = None
    options: tuple[tuple[str, bool], ...] = ()


@dataclass(frozen=True)
class KustomizeOptions:
    """`source.kustomize`: edits made on a scratch copy before `kustomize build`."""

    name_prefix: str = ""
    name_suffix: str = ""
    images: tuple[str, ...] = ()
    common_labels: tuple[tuple[str, str], ...] = ()
    common_annotations: tuple[tuple[str, str], ...] = ()
    force_common_labels: bool = False
    force_common_annotations: bool = False
    namespace: str = ""
    patches: tuple[KustomizePatch, ...] = ()


def digest(*parts: object) -> str:
    """A short, stable digest of option values (dataclasses, strings, None)."""
    data = json.dumps(
        [asdict(p) if hasattr(p, "__dataclass_fields__") else p for p in parts],  # type: ignore[call-overload]
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(data.encode()).hexdigest()[:16]


def _fail(where: str, problem: str) -> PermanentError:
    return PermanentError(f"spec.source.{where} {problem}", hint=_HINT)


def _text(raw: dict[str, Any], key: str, where: str, limit: int = 1024) -> str:
    value = raw.get(key)
    if value is None:
        return ""
    if not isinstance(value, (str, int, float, bool)):
        raise _fail(f"{where}.{key}", "must be a string")
    text = str(value)
    if len(text) > limit:
        raise _fail(f"{where}.{key}", f"is {len(text)} characters long, over the limit of {limit}")
    if "\0" in text:
        raise _fail(f"{where}.{key}", "contains a NUL character")
    return text


def _items(raw: dict[str, Any], key: str, where: str) -> list[Any]:
    value = raw.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise _fail(f"{where}.{key}", "must be a list")
    if len(value) > MAX_ITEMS:
        raise _fail(f"{where}.{key}", f"has {len(value)} entries, over the limit of {MAX_ITEMS}")
    return value


def _string_map(raw: dict[str, Any], key: str, where: str) -> tuple[tuple[str, str], ...]:
    value = raw.get(key)
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise _fail(f"{where}.{key}", "must be a map of strings")
    if len(value) > MAX_ITEMS:
        raise _fail(f"{where}.{key}", f"has {len(value)} entries, over the limit of {MAX_ITEMS}")
    pairs = []
    for name, text in sorted(value.items()):
        if not isinstance(name, str) or not _LABEL_KEY.match(name):
            raise _fail(f"{where}.{key}", f"has the key {str(name)[:80]!r}, not a valid label key")
        if not isinstance(text, str) or len(text) > 1024 or "\0" in text:
            raise _fail(f"{where}.{key}.{name}", "must be a string of at most 1024 characters")
        pairs.append((name, text))
    return tuple(pairs)


def parse_helm(raw: Any) -> HelmOptions | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise _fail("helm", "must be an object")
    where = "helm"
    files = tuple(
        _text({"f": f}, "f", f"{where}.valueFiles[]") for f in _items(raw, "valueFiles", where)
    )
    params = []
    for index, item in enumerate(_items(raw, "parameters", where)):
        if not isinstance(item, dict) or not item.get("name"):
            raise _fail(f"{where}.parameters[{index}]", "needs a name")
        params.append(
            HelmParameter(
                _text(item, "name", f"{where}.parameters[{index}]"),
                _text(item, "value", f"{where}.parameters[{index}]", MAX_TEXT),
                bool(item.get("forceString", False)),
            )
        )
    values_object = raw.get("valuesObject")
    if values_object is not None and not isinstance(values_object, dict):
        raise _fail(f"{where}.valuesObject", "must be an object")
    as_json = json.dumps(values_object, sort_keys=True) if values_object else ""
    if len(as_json) > MAX_TEXT:
        raise _fail(f"{where}.valuesObject", f"is over the limit of {MAX_TEXT} bytes as JSON")
    values = raw.get("values")
    if values is not None and not isinstance(values, str):
        # Argo CD accepts an object here as well; it means the same as valuesObject.
        if isinstance(values, dict) and not as_json:
            as_json = json.dumps(values, sort_keys=True)
            values = None
        else:
            raise _fail(f"{where}.values", "must be YAML text (or use valuesObject)")
    return HelmOptions(
        release_name=_text(raw, "releaseName", where, 53),
        value_files=files,
        values=_text({"values": values}, "values", where, MAX_TEXT),
        values_object=as_json,
        parameters=tuple(params),
        skip_crds=bool(raw.get("skipCrds", False)),
        ignore_missing_value_files=bool(raw.get("ignoreMissingValueFiles", False)),
    )


def _patch(item: Any, where: str) -> KustomizePatch:
    if not isinstance(item, dict):
        raise _fail(where, "must be an object with patch or path")
    patch = _text(item, "patch", where, MAX_TEXT)
    path = _text(item, "path", where)
    if bool(patch) == bool(path):
        raise _fail(where, "needs exactly one of patch (inline) and path (a file)")
    target = None
    raw_target = item.get("target")
    if raw_target is not None:
        if not isinstance(raw_target, dict):
            raise _fail(f"{where}.target", "must be an object")
        tw = f"{where}.target"
        target = PatchTarget(
            group=_text(raw_target, "group", tw),
            version=_text(raw_target, "version", tw),
            kind=_text(raw_target, "kind", tw),
            name=_text(raw_target, "name", tw),
            namespace=_text(raw_target, "namespace", tw),
            label_selector=_text(raw_target, "labelSelector", tw),
            annotation_selector=_text(raw_target, "annotationSelector", tw),
        )
    options = item.get("options") or {}
    if not isinstance(options, dict) or not all(isinstance(v, bool) for v in options.values()):
        raise _fail(f"{where}.options", "must map option names to true or false")
    return KustomizePatch(patch, path, target, tuple(sorted(options.items())))


def parse_kustomize(raw: Any) -> KustomizeOptions | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise _fail("kustomize", "must be an object")
    where = "kustomize"
    images = tuple(_text({"i": i}, "i", f"{where}.images[]") for i in _items(raw, "images", where))
    for image in images:
        if not image or image.startswith("-") or any(c.isspace() for c in image):
            raise _fail(f"{where}.images", f"has {image[:80]!r}, not an image reference")
    prefix, suffix = _text(raw, "namePrefix", where, 253), _text(raw, "nameSuffix", where, 253)
    return KustomizeOptions(
        name_prefix=prefix,
        name_suffix=suffix,
        images=images,
        common_labels=_string_map(raw, "commonLabels", where),
        common_annotations=_string_map(raw, "commonAnnotations", where),
        force_common_labels=bool(raw.get("forceCommonLabels", False)),
        force_common_annotations=bool(raw.get("forceCommonAnnotations", False)),
        namespace=_text(raw, "namespace", where, 63),
        patches=tuple(
            _patch(item, f"{where}.patches[{i}]")
            for i, item in enumerate(_items(raw, "patches", where))
        ),
    )


def parse_chart(raw: Any) -> str:
    """`source.chart`: a chart's name in a Helm repository or OCI registry."""
    if raw is None or raw == "":
        return ""
    if not isinstance(raw, str) or not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,252}$", raw):
        raise _fail("chart", f"{str(raw)[:80]!r} is not a chart name")
    if ".." in raw.split("/"):
        raise _fail("chart", f"{raw!r} climbs out with '..'")
    return raw
