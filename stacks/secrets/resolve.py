"""Pure sync logic: remote data -> the desired Secret, templating and the data hash.

No I/O. The controller fetches every remote key once (`ExternalSecretSpec.remote_keys`),
passes the answers here and gets back either a complete desired Secret or the list of
what is missing: a partial result is never returned, so a partial sync cannot happen
(upstream reported missing keys as synced: external-secrets#1049, #3879).

Values travel as bytes inside `DesiredSecret`; messages and errors only ever name keys.
Called by stacks.secrets.controller and the unit tests.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stacks.secrets.api import ExternalSecretSpec, MergePolicy, SpecError

# One remote secret as the provider returned it (None: the key does not exist).
RemoteSecret = Mapping[str, Any] | None

_PLACEHOLDER = re.compile(
    r"\{\{-?\s*(?:\.(?P<plain>[A-Za-z_][A-Za-z0-9_]*)|index\s+\.\s+\"(?P<quoted>[^\"]+)\")\s*-?\}\}"
)
_ANY_ACTION = re.compile(r"\{\{.*?\}\}", re.DOTALL)


class TemplateError(SpecError):
    """A template refers to a key that is not there, or uses unsupported syntax."""


@dataclass(frozen=True)
class DesiredSecret:
    """What the managed Secret should hold (the fields this controller owns)."""

    data: tuple[tuple[str, bytes], ...]
    type: str = ""
    labels: tuple[tuple[str, str], ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()

    def data_dict(self) -> dict[str, bytes]:
        return dict(self.data)

    def encoded(self) -> dict[str, str]:
        return {k: base64.b64encode(v).decode() for k, v in self.data}


@dataclass(frozen=True)
class Resolution:
    """Either `secret` (every key resolved) or `missing` (human-readable, names only)."""

    secret: DesiredSecret | None
    missing: tuple[str, ...] = ()
    all_gone: bool = False  # every remote key referenced is absent from the provider

    @property
    def complete(self) -> bool:
        return self.secret is not None


def to_bytes(value: Any) -> bytes:
    """A remote value as Secret bytes: strings as UTF-8, anything else as compact JSON."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def lookup(data: Mapping[str, Any], prop: str) -> tuple[bool, Any]:
    """(found, value) for `prop` in `data`: an exact key first, then a dotted path."""
    if prop in data:
        return True, data[prop]
    current: Any = data
    for part in prop.split("."):
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return False, None
    return True, current


def render_template(text: str, values: Mapping[str, bytes]) -> bytes:
    """Substitute `{{ .key }}` and `{{ index . "key" }}`; anything else is an error."""

    for action in _ANY_ACTION.findall(text):
        if not _PLACEHOLDER.fullmatch(action):
            raise TemplateError(
                f"unsupported template action {action[:40]!r}: only {{{{ .key }}}} "
                'and {{ index . "key" }} are supported'
            )

    def replace(match: re.Match[str]) -> str:
        key = match.group("plain") or match.group("quoted")
        if key not in values:
            raise TemplateError(f"template refers to {key!r}, which is not in the synced data")
        return values[key].decode("utf-8", errors="surrogateescape")

    return _PLACEHOLDER.sub(replace, text).encode("utf-8", errors="surrogateescape")


def resolve(spec: ExternalSecretSpec, remote: Mapping[str, RemoteSecret]) -> Resolution:
    """Build the desired Secret from the provider's answers for `spec.remote_keys()`."""
    missing: list[str] = []
    values: dict[str, bytes] = {}
    for key in spec.extract_keys:
        answer = remote.get(key)
        if answer is None:
            missing.append(f"remote key {key!r} not found (dataFrom.extract)")
            continue
        for name, value in answer.items():
            values[str(name)] = to_bytes(value)
    for item in spec.data:
        answer = remote.get(item.remote.key)
        if answer is None:
            missing.append(f"remote key {item.remote.key!r} not found (for {item.secret_key!r})")
            continue
        if not item.remote.property:
            values[item.secret_key] = to_bytes(dict(answer))
            continue
        found, value = lookup(answer, item.remote.property)
        if not found:
            missing.append(
                f"property {item.remote.property!r} not found in remote key "
                f"{item.remote.key!r} (for {item.secret_key!r})"
            )
            continue
        values[item.secret_key] = to_bytes(value)
    if missing:
        keys = spec.remote_keys()
        gone = bool(keys) and all(remote.get(k) is None for k in keys)
        return Resolution(None, tuple(missing), all_gone=gone)
    template = spec.template
    if template is None:
        return Resolution(DesiredSecret(tuple(sorted(values.items()))))
    rendered = {key: render_template(text, values) for key, text in template.data}
    if template.data and template.merge_policy is MergePolicy.REPLACE:
        data = rendered
    else:
        data = {**values, **rendered}
    return Resolution(
        DesiredSecret(
            data=tuple(sorted(data.items())),
            type=template.type,
            labels=template.labels,
            annotations=template.annotations,
        )
    )


def data_hash(secret: DesiredSecret) -> str:
    """A stable digest of everything we write (detects drift and no-op syncs)."""
    digest = hashlib.sha256()
    digest.update(secret.type.encode() + b"\0")
    for part in (secret.labels, secret.annotations):
        for key, value in part:
            digest.update(key.encode() + b"=" + value.encode() + b"\0")
        digest.update(b"\1")
    for key, raw in secret.data:
        digest.update(key.encode() + b"=" + hashlib.sha256(raw).digest() + b"\0")
    return digest.hexdigest()[:32]


def live_matches(live: Mapping[str, Any] | None, secret: DesiredSecret, wanted_hash: str) -> bool:
    """Does the live Secret already hold exactly what we would write?"""
    if live is None:
        return False
    meta = live.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    if annotations.get("secrets.platform.local/data-hash") != wanted_hash:
        return False
    if secret.type and live.get("type", "Opaque") != secret.type:
        return False
    labels = meta.get("labels") or {}
    if any(labels.get(k) != v for k, v in secret.labels):
        return False
    if any(annotations.get(k) != v for k, v in secret.annotations):
        return False
    live_data = live.get("data") or {}
    return all(live_data.get(k) == v for k, v in secret.encoded().items())
