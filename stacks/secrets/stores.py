"""SecretStore / ClusterSecretStore: validation, status, and a cache of Vault providers.

`Stores.provider(store, es_namespace)` returns a logged-in `VaultProvider` for a store
object, reusing it while the store's spec (generation) and its token are unchanged.
`StoreReconciler` validates a store in the controller shape of stacks/kube/controller.py
(load from the cache, one step `validate`: parse the spec, then ask Vault to look up our
token; `finish` writes its `Ready` condition once, with ESO's reasons: Valid,
InvalidProviderConfig (the spec is wrong) or ValidationFailed (Vault said no or did not
answer), and asks to look again after VALID_RECHECK or INVALID_RECHECK).

Called by stacks.secrets.controller.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from stacks.errors import PermanentError, PlatformError, TransientError
from stacks.kube.controller import ObjectReconciler, QueueKey, Result, Step, split_key
from stacks.kube.objects import KubeObject
from stacks.secrets.api import (
    CLUSTER_SECRET_STORE,
    KubernetesAuth,
    Reason,
    SecretKeyRef,
    SpecError,
    TokenAuth,
    VaultStore,
    parse_store,
)
from stacks.secrets.status import set_condition, timestamp, write_status
from stacks.secrets.vault_provider import VaultProvider

log = logging.getLogger(__name__)

VALID_RECHECK = 300.0
INVALID_RECHECK = 30.0
TOKEN_SECONDS = 600  # the TokenRequest minimum; Vault only needs it for the login
TOKEN_CACHE_SECONDS = 15.0  # a rotated token Secret is picked up within this time


class KubeAPI(Protocol):
    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> KubeObject | None: ...

    def token_request(
        self,
        namespace: str,
        service_account: str,
        audiences: list[str] | None = None,
        expiration_seconds: int = 3600,
    ) -> str: ...

    def apply_status(self, obj: KubeObject, field_manager: str) -> KubeObject: ...


def store_label(kind: str, namespace: str, name: str) -> str:
    return f"{kind} '{name}'" if kind == CLUSTER_SECRET_STORE else f"{kind} '{namespace}/{name}'"


class Stores:
    def __init__(
        self,
        client: KubeAPI,
        lookup: Callable[[str, str, str], KubeObject | None],
        provider_factory: Callable[..., VaultProvider] = VaultProvider,
    ) -> None:
        self._client = client
        self._lookup = lookup  # (kind, namespace, name) -> the cached store object
        self._factory = provider_factory
        self._providers: dict[tuple[Any, ...], tuple[tuple[Any, ...], VaultProvider]] = {}
        self._tokens: dict[SecretKeyRef, tuple[str, float]] = {}
        self._lock = threading.Lock()

    # ---- providers ----------------------------------------------------------------------

    def _token(self, auth: TokenAuth) -> str:
        """The token from its Secret, re-read at most every TOKEN_CACHE_SECONDS."""
        ref = auth.secret
        now = time.monotonic()
        with self._lock:
            cached = self._tokens.get(ref)
        if cached is not None and now - cached[1] < TOKEN_CACHE_SECONDS:
            return cached[0]
        token = self._read_token(auth)
        with self._lock:
            self._tokens[ref] = (token, now)
        return token

    def _read_token(self, auth: TokenAuth) -> str:
        ref = auth.secret
        secret = self._client.get("v1", "Secret", ref.name, ref.namespace)
        if secret is None:
            raise SpecError(f"token Secret '{ref.namespace}/{ref.name}' does not exist")
        raw = (secret.get("data") or {}).get(ref.key)
        if not raw:
            raise SpecError(f"token Secret '{ref.namespace}/{ref.name}' has no key {ref.key!r}")
        return base64.b64decode(raw).decode().strip()

    def provider(self, store: KubeObject) -> VaultProvider:
        """A provider for `store` (raises SpecError, VaultAuthError, VaultUnavailable)."""
        meta = store.get("metadata") or {}
        parsed = parse_store(store)
        identity = (store.get("kind"), meta.get("namespace") or "", meta.get("name"))
        version: tuple[Any, ...] = (meta.get("uid"), meta.get("generation"))
        token: str | None = None
        if isinstance(parsed.auth, TokenAuth):
            token = self._token(parsed.auth)
            version += (hashlib.sha256(token.encode()).hexdigest(),)
        with self._lock:
            cached = self._providers.get(identity)
            if cached is not None and cached[0] == version:
                return cached[1]
            if cached is not None:
                cached[1].close()
            provider = self._make(parsed, token)
            self._providers[identity] = (version, provider)
            return provider

    def _make(self, store: VaultStore, token: str | None) -> VaultProvider:
        if isinstance(store.auth, KubernetesAuth):
            account = store.auth.service_account

            def jwt() -> str:
                try:
                    return self._client.token_request(
                        account.namespace,
                        account.name,
                        list(account.audiences) or None,
                        TOKEN_SECONDS,
                    )
                except PlatformError as error:
                    raise TransientError(
                        f"failed to request a token for ServiceAccount "
                        f"'{account.namespace}/{account.name}': {error}"
                    ) from error

            provider: VaultProvider = self._factory(store, jwt_source=jwt)
            return provider
        provider = self._factory(store, static_token=token)
        return provider

    def forget(self, kind: str, namespace: str, name: str) -> None:
        with self._lock:
            self._tokens.clear()
            cached = self._providers.pop((kind, namespace, name), None)
        if cached is not None:
            cached[1].close()

    def close(self) -> None:
        with self._lock:
            providers = list(self._providers.values())
            self._providers.clear()
        for _, provider in providers:
            provider.close()


@dataclass
class _StoreAttempt:
    """The subject of one store reconcile."""

    store: KubeObject
    label: str


class StoreReconciler(ObjectReconciler[_StoreAttempt]):
    """SecretStores and ClusterSecretStores: validate; Ready written in `finish`."""

    def __init__(self, stores: Stores) -> None:
        self.stores = stores

    def load(self, key: QueueKey) -> _StoreAttempt | None:
        kind, namespace, name = split_key(key)
        store = self.stores._lookup(kind, namespace, name)
        if store is None:
            self.stores.forget(kind, namespace, name)
            return None
        return _StoreAttempt(store, store_label(kind, namespace, name))

    def steps(self, subject: _StoreAttempt) -> Sequence[Step[_StoreAttempt]]:
        return [("validate", self._validate)]

    def _validate(self, a: _StoreAttempt) -> None:
        self.stores.provider(a.store).check()

    def finish(self, a: _StoreAttempt, result: Result) -> Result:
        """Ready from the outcome, written once; a store is looked at again on a fixed
        schedule (a Vault outage is no reason to back off: ExternalSecrets wait on it)."""
        error = result.error
        ready, reason, message, after = True, Reason.VALID, "store validated", VALID_RECHECK
        if isinstance(error, SpecError):
            ready, reason, message, after = (
                False,
                Reason.INVALID_PROVIDER,
                str(error),
                INVALID_RECHECK,
            )
        elif isinstance(error, (PermanentError, TransientError)):
            ready, reason, message, after = (
                False,
                Reason.VALIDATION_FAILED,
                str(error),
                INVALID_RECHECK,
            )
        elif error is not None:
            return result  # a bug: the runtime logs it and backs off
        if not ready:
            log.warning("failed to validate %s: %s", a.label, message)
        status = dict(a.store.get("status") or {})
        status["conditions"] = set_condition(
            status.get("conditions"), "Ready", ready, reason, message, timestamp()
        )
        status["capabilities"] = "ReadOnly"
        write_status(self.stores._client, a.store, status)
        return Result(after=after)
