"""SecretStore / ClusterSecretStore: validation, status, and a cache of Vault providers.

`Stores.provider(store, es_namespace)` returns a logged-in `VaultProvider` for a store
object, reusing it while the store's spec (generation) and its token are unchanged.
`Stores.reconcile(kind, namespace, name)` validates a store (parse the spec, then ask
Vault to look up our token) and writes its `Ready` condition with ESO's reasons:
Valid, InvalidProviderConfig (the spec is wrong) or ValidationFailed (Vault said no or
did not answer).

Called by stacks.secrets.controller.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from stacks.errors import PermanentError, PlatformError, TransientError
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

    # ---- store reconcile ----------------------------------------------------------------

    def reconcile(self, kind: str, namespace: str, name: str) -> float | None:
        store = self._lookup(kind, namespace, name)
        label = store_label(kind, namespace, name)
        if store is None:
            self.forget(kind, namespace, name)
            return None
        ready, reason, message, after = True, Reason.VALID, "store validated", VALID_RECHECK
        try:
            self.provider(store).check()
        except SpecError as error:
            ready, reason, message, after = (
                False,
                Reason.INVALID_PROVIDER,
                str(error),
                INVALID_RECHECK,
            )
        except (PermanentError, TransientError) as error:
            ready, reason, message, after = (
                False,
                Reason.VALIDATION_FAILED,
                str(error),
                INVALID_RECHECK,
            )
        if not ready:
            log.warning("failed to validate %s: %s", label, message)
        status = dict(store.get("status") or {})
        status["conditions"] = set_condition(
            status.get("conditions"), "Ready", ready, reason, message, timestamp()
        )
        status["capabilities"] = "ReadOnly"
        write_status(self._client, store, status)
        return after
