"""The Vault adapter: the only module of the secrets controller that imports `hvac`.

A `VaultProvider` reads KV secrets (v1 or v2) for one store, authenticating with a
static token (`tokenSecretRef`) or the Kubernetes auth method (a TokenRequest JWT,
logged in again before the Vault token expires). Library errors are wrapped here:

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
from typing import Any

import hvac
import hvac.exceptions
import requests

from stacks.errors import PermanentError, TransientError, trim
from stacks.secrets.api import KubernetesAuth, VaultStore

TIMEOUT = 10.0
# Log in again when less than this share of the Vault token's lifetime remains.
RENEW_FRACTION = 1 / 3


class VaultUnavailable(TransientError):
    """Vault cannot answer now (down, sealed, overloaded)."""


class VaultAuthError(PermanentError):
    """Vault refused our identity."""


class VaultError(PermanentError):
    """Vault refused a request for another reason."""


def _describe(error: Exception) -> str:
    if isinstance(error, hvac.exceptions.VaultError):
        errors = getattr(error, "errors", None) or [str(error)]
        return trim("; ".join(str(e) for e in errors), 200)
    return trim(str(error), 200)


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
        self._client = hvac.Client(
            url=store.server, namespace=store.namespace, verify=verify, timeout=timeout
        )
        if static_token is not None:
            self._client.token = static_token

    # ---- auth ---------------------------------------------------------------------------

    def _login(self) -> None:
        auth = self.store.auth
        assert isinstance(auth, KubernetesAuth) and self._jwt_source is not None
        jwt = self._jwt_source()
        try:
            answer = self._client.auth.kubernetes.login(
                role=auth.role, jwt=jwt, mount_point=auth.mount_path
            )
        except (
            hvac.exceptions.VaultDown,
            hvac.exceptions.InternalServerError,
            hvac.exceptions.BadGateway,
        ) as error:
            raise VaultUnavailable(
                f"Vault at {self.store.server} is unavailable: {_describe(error)}"
            ) from error
        except requests.exceptions.RequestException as error:
            raise VaultUnavailable(
                f"Vault at {self.store.server} is unreachable: {_describe(error)}"
            ) from error
        except hvac.exceptions.VaultError as error:
            raise VaultAuthError(
                f"Vault refused the Kubernetes login (mount {auth.mount_path!r}, role "
                f"{auth.role!r}, ServiceAccount '{auth.service_account.namespace}/"
                f"{auth.service_account.name}'): {_describe(error)}",
                hint="check the role's bound service accounts and the auth method's kubernetes_host",
            ) from error
        lease = float((answer.get("auth") or {}).get("lease_duration") or 0)
        # A token without a TTL never needs a new login; otherwise log in again early.
        self._relogin_at = self._clock() + (lease * (1 - RENEW_FRACTION) if lease else 1e12)

    def _ensure_token(self, force: bool = False) -> None:
        if self._jwt_source is None:
            return
        with self._lock:
            if force or not self._client.token or self._clock() >= self._relogin_at:
                self._login()

    # ---- reads --------------------------------------------------------------------------

    def _relative(self, key: str) -> str:
        key = key.strip("/")
        for prefix in (f"{self.store.path}/data/", f"{self.store.path}/"):
            if key.startswith(prefix):
                return key[len(prefix) :]
        return key

    def _call(self, what: str, call: Callable[[], Any]) -> Any:
        for attempt in (1, 2):
            self._ensure_token(force=attempt == 2)
            try:
                return call()
            except hvac.exceptions.InvalidPath:
                return None
            except (hvac.exceptions.VaultDown, hvac.exceptions.VaultNotInitialized) as error:
                raise VaultUnavailable(
                    f"Vault at {self.store.server} {self._why_down(error)}"
                ) from error
            except (
                hvac.exceptions.InternalServerError,
                hvac.exceptions.BadGateway,
                hvac.exceptions.RateLimitExceeded,
                hvac.exceptions.UnexpectedError,
            ) as error:
                raise VaultUnavailable(
                    f"Vault at {self.store.server} failed to {what}: {_describe(error)}"
                ) from error
            except requests.exceptions.RequestException as error:
                raise VaultUnavailable(
                    f"Vault at {self.store.server} is unreachable: {_describe(error)}"
                ) from error
            except (hvac.exceptions.Forbidden, hvac.exceptions.Unauthorized) as error:
                if attempt == 1 and self._jwt_source is not None:
                    continue  # the token may have expired early: log in once more
                raise VaultAuthError(
                    f"Vault refused to {what}: {_describe(error)}",
                    hint="check the Vault token or role and its policies",
                ) from error
            except hvac.exceptions.VaultError as error:
                raise VaultError(f"Vault refused to {what}: {_describe(error)}") from error
        raise AssertionError("unreachable")

    def _why_down(self, error: hvac.exceptions.VaultError) -> str:
        """Sealed and not initialised need different fixes (unseal, or initialise): Vault's
        unauthenticated seal status tells them apart, where the 503 alone does not."""
        if isinstance(error, hvac.exceptions.VaultNotInitialized):
            return "is not initialised"
        try:
            status = self._client.sys.read_seal_status()
        except (hvac.exceptions.VaultError, requests.exceptions.RequestException):
            status = {}
        if status.get("initialized") is False:
            return "is not initialised"
        if status.get("sealed"):
            return "is sealed"
        return f"is unavailable: {_describe(error)}"

    def read(self, key: str) -> dict[str, Any] | None:
        """The secret's key/value map at `key` under the store's mount, or None if absent."""
        path = self._relative(key)
        mount = self.store.path
        if self.store.version == "v2":
            answer = self._call(
                f"read {mount}/{path}",
                lambda: self._client.secrets.kv.v2.read_secret_version(
                    path=path, mount_point=mount, raise_on_deleted_version=True
                ),
            )
            if answer is None:
                return None
            data = (answer.get("data") or {}).get("data")
        else:
            answer = self._call(
                f"read {mount}/{path}",
                lambda: self._client.secrets.kv.v1.read_secret(path=path, mount_point=mount),
            )
            if answer is None:
                return None
            data = answer.get("data")
        return dict(data) if isinstance(data, dict) else None

    def check(self) -> None:
        """Prove the store works: Vault answers, is unsealed and accepts our token."""
        self._call("look up its own token", lambda: self._client.auth.token.lookup_self())

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._client.adapter.close()
        if self._ca_file:
            with contextlib.suppress(OSError):
                os.unlink(self._ca_file)
