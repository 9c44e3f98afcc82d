"""A store's Vault client: KV reads for one SecretStore, logged in as the store says.

A `VaultProvider` reads KV secrets (v1 or v2) for one store, authenticating with a
static token (`tokenSecretRef`) or the Kubernetes auth method (a TokenRequest JWT,
logged in again before the Vault token expires, and once more when Vault rejects the
token early). It is store glue only: every Vault call goes through the one hvac
adapter, `stacks.vault.api.VaultApi`, whose error tree it passes on:

    VaultUnavailable (TransientError)  unreachable, sealed, 5xx: keep the last good Secret
    VaultAuthError   (PermanentError)  login refused or token rejected: fix the store
    VaultError       (PermanentError)  any other refusal (403 on a path, bad request)

A key that does not exist is not an error: `read` returns None. Messages name the
server and the key, never a token or a value. Called by stacks.secrets.stores.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from stacks.secrets.api import KubernetesAuth, VaultStore
from stacks.vault.api import VaultApi, VaultAuthError, VaultError, VaultUnavailable

__all__ = ["VaultAuthError", "VaultError", "VaultProvider", "VaultUnavailable"]

T = TypeVar("T")
TIMEOUT = 10.0
# Log in again when less than this share of the Vault token's lifetime remains.
RENEW_FRACTION = 1 / 3


class VaultProvider:
    """A logged-in client for one store. Thread-safe (one login at a time)."""

    def __init__(
        self,
        store: VaultStore,
        static_token: str | None = None,
        jwt_source: Callable[[], str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        timeout: float = TIMEOUT,
    ) -> None:
        self.store = store
        self._static_token = static_token
        self._jwt_source = jwt_source
        self._clock = clock
        self._lock = threading.Lock()
        self._relogin_at = 0.0
        self._ca_file: str | None = None
        verify: bool | str = True
        if store.ca_bundle:
            handle, self._ca_file = tempfile.mkstemp(prefix="vault-ca-", suffix=".pem")
            with os.fdopen(handle, "wb") as out:
                out.write(store.ca_bundle)
            verify = self._ca_file
        self._api = VaultApi(
            store.server,
            static_token or "",
            timeout=timeout,
            namespace=store.namespace,
            verify=verify,
        )

    # ---- auth ---------------------------------------------------------------------------

    def _login(self) -> None:
        auth = self.store.auth
        assert isinstance(auth, KubernetesAuth) and self._jwt_source is not None
        login = self._api.login_kubernetes(
            auth.role,
            self._jwt_source(),
            auth.mount_path,
            who=f"ServiceAccount '{auth.service_account.namespace}/{auth.service_account.name}'",
        )
        # A token without a TTL never needs a new login; otherwise log in again early.
        lease = login.lease_seconds
        self._relogin_at = self._clock() + (lease * (1 - RENEW_FRACTION) if lease else 1e12)

    def _ensure_token(self, force: bool = False) -> None:
        if self._jwt_source is None:
            return
        with self._lock:
            if force or not self._api.has_token or self._clock() >= self._relogin_at:
                self._login()

    # ---- reads --------------------------------------------------------------------------

    def _relative(self, key: str) -> str:
        key = key.strip("/")
        for prefix in (f"{self.store.path}/data/", f"{self.store.path}/"):
            if key.startswith(prefix):
                return key[len(prefix) :]
        return key

    def _call(self, call: Callable[[], T]) -> T:
        for attempt in (1, 2):
            self._ensure_token(force=attempt == 2)
            try:
                return call()
            except VaultAuthError:
                if attempt == 1 and self._jwt_source is not None:
                    continue  # the token may have expired early: log in once more
                raise
        raise AssertionError("unreachable")

    def read(self, key: str) -> dict[str, Any] | None:
        """The secret's key/value map at `key` under the store's mount, or None if absent."""
        path = self._relative(key)
        return self._call(lambda: self._api.kv_read(self.store.path, path, self.store.version))

    def check(self) -> None:
        """Prove the store works: Vault answers, is unsealed and accepts our token."""
        self._call(self._api.lookup_token)

    def close(self) -> None:
        self._api.close()
        if self._ca_file:
            with contextlib.suppress(OSError):
                os.unlink(self._ca_file)
