"""The secrets API: names, raw JSON shapes, and parsing of specs into checked values.

`SecretStore` / `ClusterSecretStore` / `ExternalSecret` in group `secrets.platform.local`,
version v1, with External Secrets Operator v1 field names for the Vault provider. Parsing
is pure (no I/O): `parse_store` and `parse_external_secret` turn a raw object into frozen
values or raise `SpecError` with a message a user can act on (never a secret value).
The CRD schema rejects most bad specs at admission; these checks repeat the important
ones so an object admitted by an older CRD still gets a clear condition.

Called by stacks.secrets.controller, stacks.secrets.stores and the unit tests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NotRequired, TypedDict

from stacks.errors import PermanentError
from stacks.kube import durations

GROUP = "secrets.platform.local"
VERSION = "v1"
API_VERSION = f"{GROUP}/{VERSION}"
EXTERNAL_SECRET = "ExternalSecret"  # noqa: S105 - a kind, not a password
SECRET_STORE = "SecretStore"  # noqa: S105
CLUSTER_SECRET_STORE = "ClusterSecretStore"  # noqa: S105

FIELD_MANAGER = "platform-secrets"
MANAGED_LABEL = f"{GROUP}/managed"
DATA_HASH_ANNOTATION = f"{GROUP}/data-hash"
FORCE_SYNC_ANNOTATION = f"{GROUP}/force-sync"
OWNER_ANNOTATION = f"{GROUP}/external-secret"  # "<namespace>/<name>" of the writer

DEFAULT_REFRESH = 3600.0


class CreationPolicy(StrEnum):
    OWNER = "Owner"
    ORPHAN = "Orphan"
    MERGE = "Merge"
    NONE = "None"


class DeletionPolicy(StrEnum):
    RETAIN = "Retain"
    DELETE = "Delete"
    MERGE = "Merge"


class MergePolicy(StrEnum):
    REPLACE = "Replace"
    MERGE = "Merge"


class Reason(StrEnum):
    """Condition reasons (ESO's names)."""

    SYNCED = "SecretSynced"
    SYNC_ERROR = "SecretSyncedError"
    DELETED = "SecretDeleted"
    VALID = "Valid"
    INVALID_PROVIDER = "InvalidProviderConfig"
    VALIDATION_FAILED = "ValidationFailed"


# ---- raw JSON --------------------------------------------------------------------------


class Condition(TypedDict):
    type: str
    status: str
    reason: str
    message: str
    lastTransitionTime: str


class ExternalSecretStatus(TypedDict, total=False):
    conditions: list[Condition]
    refreshTime: str
    syncedResourceVersion: str
    binding: dict[str, str]


class StoreStatus(TypedDict, total=False):
    conditions: list[Condition]
    capabilities: str


class RemoteRefJSON(TypedDict):
    key: str
    property: NotRequired[str]


class DataJSON(TypedDict):
    secretKey: str
    remoteRef: RemoteRefJSON


class SpecError(PermanentError):
    """The object's spec cannot work as written; the message says which field and why."""


# ---- values ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SecretKeyRef:
    name: str
    key: str
    namespace: str


@dataclass(frozen=True)
class ServiceAccountRef:
    name: str
    namespace: str
    audiences: tuple[str, ...] = ()


@dataclass(frozen=True)
class TokenAuth:
    secret: SecretKeyRef


@dataclass(frozen=True)
class KubernetesAuth:
    mount_path: str
    role: str
    service_account: ServiceAccountRef


@dataclass(frozen=True)
class VaultStore:
    """A parsed `spec.provider.vault` (refs already resolved to a namespace)."""

    server: str
    path: str
    version: str
    namespace: str | None
    ca_bundle: bytes | None
    auth: TokenAuth | KubernetesAuth


@dataclass(frozen=True)
class RemoteRef:
    key: str
    property: str = ""


@dataclass(frozen=True)
class DataItem:
    secret_key: str
    remote: RemoteRef


@dataclass(frozen=True)
class Template:
    type: str = ""
    labels: tuple[tuple[str, str], ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()
    data: tuple[tuple[str, str], ...] = ()
    merge_policy: MergePolicy = MergePolicy.REPLACE


@dataclass(frozen=True)
class ExternalSecretSpec:
    store_name: str
    store_kind: str
    refresh_seconds: float
    target_name: str
    creation: CreationPolicy
    deletion: DeletionPolicy
    template: Template | None
    data: tuple[DataItem, ...] = ()
    extract_keys: tuple[str, ...] = field(default=())

    def remote_keys(self) -> list[str]:
        """Every remote key read by one sync, each once, in order."""
        seen: dict[str, None] = {}
        for item in self.data:
            seen.setdefault(item.remote.key, None)
        for key in self.extract_keys:
            seen.setdefault(key, None)
        return list(seen)


# ---- parsing ---------------------------------------------------------------------------

_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


def parse_duration(text: str | int | float | None, default: float = DEFAULT_REFRESH) -> float:
    """A Go duration ("1h0m0s", "30s", "0") in seconds; None means `default`."""
    if text is None or text == "":
        return default
    if isinstance(text, int | float):
        return float(text)
    try:
        return durations.parse_seconds(text)
    except durations.DurationError:
        raise SpecError(
            f"refreshInterval {text.strip()!r} is not a duration such as 1h, 15m or 30s"
        ) from None


def check_policies(creation: CreationPolicy, deletion: DeletionPolicy) -> None:
    """Reject ESO's forbidden combinations (also enforced by the CRD's CEL rules)."""
    if deletion is DeletionPolicy.DELETE and creation in (
        CreationPolicy.MERGE,
        CreationPolicy.NONE,
    ):
        raise SpecError(
            f"deletionPolicy Delete cannot be combined with creationPolicy {creation}: "
            "the controller would delete a Secret it does not own"
        )
    if deletion is DeletionPolicy.MERGE and creation is CreationPolicy.NONE:
        raise SpecError("deletionPolicy Merge cannot be combined with creationPolicy None")


def _str(value: Any, where: str, required: bool = True) -> str:
    if value is None or value == "":
        if required:
            raise SpecError(f"{where} is required")
        return ""
    if not isinstance(value, str):
        raise SpecError(f"{where} must be a string")
    return value


def _enum(kind: type[StrEnum], value: Any, default: StrEnum, where: str) -> Any:
    if value is None or value == "":
        return default
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(m.value for m in kind)
        raise SpecError(f"{where} must be one of {choices}, not {value!r}") from None


def _pairs(value: Any, where: str) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise SpecError(f"{where} must be a map of strings")
    return tuple(sorted((str(k), str(v)) for k, v in value.items()))


def parse_store(obj: dict[str, Any]) -> VaultStore:
    """The Vault provider of a SecretStore or ClusterSecretStore."""
    kind = str(obj.get("kind", SECRET_STORE))
    cluster = kind == CLUSTER_SECRET_STORE
    own_namespace = str((obj.get("metadata") or {}).get("namespace") or "")
    provider = ((obj.get("spec") or {}).get("provider")) or {}
    vault = provider.get("vault")
    if not isinstance(vault, dict):
        others = ", ".join(sorted(provider)) or "none"
        raise SpecError(f"spec.provider.vault is required (only Vault is supported; got {others})")
    server = _str(vault.get("server"), "spec.provider.vault.server")
    if not server.startswith(("http://", "https://")):
        raise SpecError("spec.provider.vault.server must be an http:// or https:// URL")
    version = str(vault.get("version") or "v2")
    if version not in ("v1", "v2"):
        raise SpecError(f"spec.provider.vault.version must be v1 or v2, not {version!r}")
    ca_raw = vault.get("caBundle")
    ca_bundle: bytes | None = None
    if ca_raw:
        import base64
        import binascii

        try:
            ca_bundle = base64.b64decode(str(ca_raw), validate=True)
        except (binascii.Error, ValueError):
            raise SpecError("spec.provider.vault.caBundle must be base64-encoded PEM") from None
    auth = vault.get("auth") or {}

    def ref_namespace(ref: dict[str, Any], where: str) -> str:
        namespace = str(ref.get("namespace") or "")
        if cluster and not namespace:
            raise SpecError(f"{where}.namespace is required in a ClusterSecretStore")
        if not cluster and namespace and namespace != own_namespace:
            raise SpecError(f"{where}.namespace must be the store's own namespace")
        return namespace or own_namespace

    parsed_auth: TokenAuth | KubernetesAuth
    if auth.get("tokenSecretRef"):
        ref = auth["tokenSecretRef"]
        where = "spec.provider.vault.auth.tokenSecretRef"
        parsed_auth = TokenAuth(
            SecretKeyRef(
                name=_str(ref.get("name"), f"{where}.name"),
                key=_str(ref.get("key"), f"{where}.key"),
                namespace=ref_namespace(ref, where),
            )
        )
    elif auth.get("kubernetes"):
        k8s = auth["kubernetes"]
        where = "spec.provider.vault.auth.kubernetes"
        sa = k8s.get("serviceAccountRef")
        if not isinstance(sa, dict):
            raise SpecError(f"{where}.serviceAccountRef is required")
        parsed_auth = KubernetesAuth(
            mount_path=str(k8s.get("mountPath") or "kubernetes").strip("/"),
            role=_str(k8s.get("role"), f"{where}.role"),
            service_account=ServiceAccountRef(
                name=_str(sa.get("name"), f"{where}.serviceAccountRef.name"),
                namespace=ref_namespace(sa, f"{where}.serviceAccountRef"),
                audiences=tuple(str(a) for a in sa.get("audiences") or ()),
            ),
        )
    else:
        raise SpecError("spec.provider.vault.auth needs tokenSecretRef or kubernetes")
    return VaultStore(
        server=server.rstrip("/"),
        path=_str(vault.get("path"), "spec.provider.vault.path", required=False).strip("/")
        or "secret",
        version=version,
        namespace=str(vault.get("namespace") or "") or None,
        ca_bundle=ca_bundle,
        auth=parsed_auth,
    )


def parse_external_secret(obj: dict[str, Any]) -> ExternalSecretSpec:
    spec = obj.get("spec") or {}
    name = str((obj.get("metadata") or {}).get("name", ""))
    store = spec.get("secretStoreRef") or {}
    store_kind = str(store.get("kind") or SECRET_STORE)
    if store_kind not in (SECRET_STORE, CLUSTER_SECRET_STORE):
        raise SpecError(
            f"spec.secretStoreRef.kind must be SecretStore or ClusterSecretStore, not {store_kind!r}"
        )
    target = spec.get("target") or {}
    creation: CreationPolicy = _enum(
        CreationPolicy,
        target.get("creationPolicy"),
        CreationPolicy.OWNER,
        "spec.target.creationPolicy",
    )
    deletion: DeletionPolicy = _enum(
        DeletionPolicy,
        target.get("deletionPolicy"),
        DeletionPolicy.RETAIN,
        "spec.target.deletionPolicy",
    )
    check_policies(creation, deletion)
    template: Template | None = None
    raw_template = target.get("template")
    if isinstance(raw_template, dict):
        metadata = raw_template.get("metadata") or {}
        template = Template(
            type=str(raw_template.get("type") or ""),
            labels=_pairs(metadata.get("labels"), "spec.target.template.metadata.labels"),
            annotations=_pairs(
                metadata.get("annotations"), "spec.target.template.metadata.annotations"
            ),
            data=_pairs(raw_template.get("data"), "spec.target.template.data"),
            merge_policy=_enum(
                MergePolicy,
                raw_template.get("mergePolicy"),
                MergePolicy.REPLACE,
                "spec.target.template.mergePolicy",
            ),
        )
    items: list[DataItem] = []
    for index, raw in enumerate(spec.get("data") or []):
        where = f"spec.data[{index}]"
        secret_key = _str(raw.get("secretKey"), f"{where}.secretKey")
        if not _SECRET_KEY.match(secret_key):
            raise SpecError(f"{where}.secretKey {secret_key!r} is not a valid Secret key")
        remote = raw.get("remoteRef") or {}
        items.append(
            DataItem(
                secret_key,
                RemoteRef(
                    key=_str(remote.get("key"), f"{where}.remoteRef.key"),
                    property=_str(
                        remote.get("property"), f"{where}.remoteRef.property", required=False
                    ),
                ),
            )
        )
    extract: list[str] = []
    for index, raw in enumerate(spec.get("dataFrom") or []):
        where = f"spec.dataFrom[{index}]"
        if not isinstance(raw.get("extract"), dict):
            raise SpecError(f"{where}: only extract is supported")
        extract.append(_str(raw["extract"].get("key"), f"{where}.extract.key"))
    if not items and not extract and not (template and template.data):
        raise SpecError(
            "spec.data, spec.dataFrom or spec.target.template.data must name something to sync"
        )
    return ExternalSecretSpec(
        store_name=_str(store.get("name"), "spec.secretStoreRef.name"),
        store_kind=store_kind,
        refresh_seconds=parse_duration(spec.get("refreshInterval")),
        target_name=str(target.get("name") or name),
        creation=creation,
        deletion=deletion,
        template=template,
        data=tuple(items),
        extract_keys=tuple(extract),
    )
