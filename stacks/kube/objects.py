"""Plain values for Kubernetes objects: the raw JSON type and a hashable reference.

Pure, no I/O (`ObjectReader` only describes a client). Used by the API adapter, the reconciler's planner and inventory, and the
controllers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

# Raw API JSON. Objects are dicts as the API server returns them; we do not model every
# kind, we read the few fields we need with the helpers below.
KubeObject = dict[str, Any]


class ObjectReader(Protocol):
    """The two reads most callers need (stacks.kube.client.KubeClient has them); callers
    that need more extend this Protocol."""

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> KubeObject | None: ...

    def list_objects(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> list[KubeObject]: ...


def split_api_version(api_version: str) -> tuple[str, str]:
    """'apps/v1' -> ('apps', 'v1'); 'v1' -> ('', 'v1')."""
    group, _, version = api_version.rpartition("/")
    return group, version


@dataclass(frozen=True, order=True)
class ObjectRef:
    """Identity of one object: group, kind, namespace, name (the version is not identity)."""

    group: str
    kind: str
    namespace: str
    name: str
    version: str = ""

    @classmethod
    def of(cls, obj: KubeObject) -> ObjectRef:
        group, version = split_api_version(str(obj.get("apiVersion", "")))
        meta = obj.get("metadata") or {}
        return cls(
            group=group,
            kind=str(obj.get("kind", "")),
            namespace=str(meta.get("namespace") or ""),
            name=str(meta.get("name", "")),
            version=version,
        )

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> tuple[str, str, str, str]:
        """What makes two refs the same object, whatever API version names it."""
        return (self.group, self.kind, self.namespace, self.name)

    def __str__(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} '{where}'"

    def inventory_id(self) -> str:
        """Flux-style inventory id: <namespace>_<name>_<group>_<kind>."""
        return f"{self.namespace}_{self.name}_{self.group}_{self.kind}"

    @classmethod
    def from_inventory_id(cls, entry_id: str, version: str = "") -> ObjectRef:
        namespace, name, group, kind = entry_id.split("_", 3)
        return cls(group=group, kind=kind, namespace=namespace, name=name, version=version)


def meta(obj: KubeObject) -> dict[str, Any]:
    value = obj.setdefault("metadata", {})
    assert isinstance(value, dict)
    return value


def annotations_of(obj: KubeObject) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("annotations") or {})


def labels_of(obj: KubeObject) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def conditions_of(obj: KubeObject) -> list[dict[str, Any]]:
    return list((obj.get("status") or {}).get("conditions") or [])


def condition_of(obj: KubeObject, kind: str) -> dict[str, Any] | None:
    for cond in conditions_of(obj):
        if cond.get("type") == kind:
            return cond
    return None
