"""The Vault/OpenBao HTTP adapter: the only module of the project that imports `hvac`.

Seal status, initialisation, unsealing, Kubernetes login, KV reads and writes, with every
library error wrapped into one error tree at this boundary:

    VaultUnavailable (TransientError)   Vault cannot answer now: down, sealed, 5xx
    └── VaultUnreachable                no answer at all (refused, timeout, TLS)
    VaultAuthError   (PermanentError)   Vault refused our identity (login, token, policy)
    VaultError       (PermanentError)   any other refusal (bad request, bad path)
    UnsealFailed     (PermanentError)   the keys given do not unseal this Vault

Two audiences, two styles of call, one client: the operator's calls (`status`,
`initialise`, `unseal`, `read`, `write`, `list_*`; the bootstrap and the unsealer) say
"failed to <verb> at <address>" with a hint, and report a sealed Vault as WaitingError
(come back in 2 s); a controller's calls (`kv_read`, `lookup_token`, the ones
`stacks.secrets.vault_provider` makes) say "Vault at <address> ..." and report a sealed
or uninitialised Vault as VaultUnavailable, naming which, so the last good Secret stays
and the store's status tells the two fixes apart. Messages carry Vault's own error text
(trimmed, redacted) and never a key or token: requests are not echoed.

Called by the unsealer (unsealer.py), the `vault` and `terraform` stages,
`platform vault ...` and the secrets controller's store glue (stacks/secrets/vault_provider.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import hvac
import hvac.exceptions
import requests

from stacks import redact
from stacks.errors import PermanentError, TransientError, WaitingError, trim
from stacks.vault.keys import InitKeys

T = TypeVar("T")


@dataclass(frozen=True)
class SealStatus:
    initialized: bool
    sealed: bool
    version: str
    threshold: int = 0
    shares: int = 0
    progress: int = 0

    def describe(self) -> str:
        if not self.initialized:
            return f"not initialised (version {self.version})"
        state = (
            f"sealed ({self.progress}/{self.threshold} keys given)" if self.sealed else "unsealed"
        )
        return f"initialised, {state} (version {self.version})"


class VaultUnavailable(TransientError):
    """Vault cannot answer now (down, sealed, overloaded)."""


class VaultUnreachable(VaultUnavailable):
    """No answer from Vault (connection refused, timeout, 502/503 from a proxy)."""


class VaultAuthError(PermanentError):
    """Vault refused our identity (login refused, token or policy rejected)."""


class VaultError(PermanentError):
    """Vault refused a request for another reason."""


class UnsealFailed(PermanentError):
    """The keys given do not unseal this Vault (wrong keys, or too few)."""


@dataclass(frozen=True)
class Login:
    """A Vault token from a login, and how long it lives (0: no TTL)."""

    token: str
    lease_seconds: float


class VaultApi:
    """One Vault address, optionally with a token (and a namespace, a CA bundle file)."""

    def __init__(
        self,
        address: str,
        token: str = "",
        timeout: float = 5.0,
        namespace: str | None = None,
        verify: bool | str = True,
    ) -> None:
        self.address = address.rstrip("/")
        redact.register(token)
        self._client = hvac.Client(
            url=self.address,
            token=token or None,
            timeout=timeout,
            namespace=namespace,
            verify=verify,
        )

    @property
    def has_token(self) -> bool:
        return bool(self._client.token)

    def use_token(self, token: str) -> None:
        redact.register(token)
        self._client.token = token

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._client.adapter.close()

    @contextmanager
    def _wrapped(self, what: str) -> Iterator[None]:
        try:
            yield
        except requests.exceptions.RequestException as error:
            raise VaultUnreachable(
                f"failed to {what} at {self.address}: {type(error).__name__}",
                hint=f"check that Vault is running and {self.address} is reachable",
            ) from None
        except hvac.exceptions.VaultDown as error:
            raise WaitingError(
                f"Vault at {self.address} is sealed or starting ({what})", retry_after=2.0
            ) from error
        except (hvac.exceptions.Forbidden, hvac.exceptions.Unauthorized) as error:
            raise VaultAuthError(
                f"failed to {what}: permission denied ({_cause(error)})",
                hint="use a token with the needed policy (the root token from `platform vault credentials --show-root-token`)",
            ) from None
        except (
            hvac.exceptions.BadGateway,
            hvac.exceptions.InternalServerError,
            hvac.exceptions.RateLimitExceeded,
        ) as error:
            raise VaultUnavailable(f"failed to {what}: {_cause(error)}") from None
        except hvac.exceptions.VaultError as error:
            raise VaultError(f"failed to {what}: {_cause(error)}") from None

    def _call(self, what: str, work: Callable[[], T]) -> T:
        with self._wrapped(what):
            return work()
        raise AssertionError("unreachable")  # pragma: no cover - for mypy

    # ---- seal ---------------------------------------------------------------------------

    def status(self) -> SealStatus:
        data: dict[str, Any]
        with self._wrapped("read seal status"):
            try:
                data = self._client.sys.read_seal_status()
            except hvac.exceptions.InvalidPath:
                # sys/seal-status exists on every Vault and OpenBao, sealed or not: a 404
                # comes from what stands in front of it, an ingress whose route to a pod
                # that just became ready is not there yet (Traefik applies endpoint changes
                # after a short throttle). Wait for it; the caller's timeout bounds that.
                raise WaitingError(
                    f"nothing routes to Vault at {self.address} yet (404 on its seal status)",
                    retry_after=1.0,
                ) from None
        return _seal_status(data)

    def initialise(self, shares: int, threshold: int) -> InitKeys:
        # Initialising raft storage writes and fsyncs a lot: give it a minute.
        slow = hvac.Client(url=self.address, timeout=60)
        answer: dict[str, Any] = self._call(
            "initialise Vault",
            lambda: slow.sys.initialize(secret_shares=shares, secret_threshold=threshold),
        )
        return InitKeys(tuple(answer["keys"]), str(answer["root_token"]), threshold)

    def unseal(self, keys: Sequence[str]) -> SealStatus:
        """Give keys until Vault unseals; UnsealFailed when they are wrong or too few."""
        redact.register(*keys)
        status = self.status()
        if not status.sealed:
            return status
        self._call("reset unseal progress", lambda: self._client.sys.submit_unseal_key(reset=True))
        for number, key in enumerate(keys, start=1):
            try:
                data = self._submit(key)
            except PermanentError as error:
                raise UnsealFailed(
                    f"Vault at {self.address} rejected unseal key {number} of {len(keys)}: "
                    f"{error.message.removeprefix('failed to unseal Vault: ')}",
                    hint="the stored unseal keys do not belong to this Vault: restore the "
                    "vault-init.json written when it was initialised",
                ) from None
            status = _seal_status(data)
            if not status.sealed:
                return status
        raise UnsealFailed(
            f"Vault at {self.address} is still sealed after {len(keys)} unseal key(s) "
            f"({status.threshold} needed)",
            hint="provide at least the threshold number of this Vault's unseal keys",
        )

    def active(self) -> bool:
        """Unsealed and serving writes (raft elected this node leader)."""
        data: dict[str, Any] = self._call("read leader status", self._client.sys.read_leader_status)
        return bool(data.get("is_self")) or not data.get("ha_enabled", False)

    def _submit(self, key: str) -> dict[str, Any]:
        with self._wrapped("unseal Vault"):
            data: dict[str, Any] = self._client.sys.submit_unseal_key(key=key)
            return data
        raise AssertionError("unreachable")  # pragma: no cover - for mypy

    # ---- tokens and data ----------------------------------------------------------------

    def token_valid(self) -> bool:
        try:
            self._call("look up the token", self._client.auth.token.lookup_self)
        except PermanentError:
            return False
        return True

    def kubernetes_login(
        self, role: str, jwt: str, mount: str = "kubernetes", who: str = ""
    ) -> str:
        """Log in with a ServiceAccount token; returns the Vault token (also used from now)."""
        return self.login_kubernetes(role, jwt, mount, who).token

    def login_kubernetes(
        self, role: str, jwt: str, mount: str = "kubernetes", who: str = ""
    ) -> Login:
        """The one Kubernetes login: the token and its lease; `who` names the identity
        (e.g. "ServiceAccount 'ns/name'") in the refusal."""
        redact.register(jwt)
        try:
            answer = self._client.auth.kubernetes.login(role=role, jwt=jwt, mount_point=mount)
        except (
            hvac.exceptions.VaultDown,
            hvac.exceptions.InternalServerError,
            hvac.exceptions.BadGateway,
        ) as error:
            raise VaultUnavailable(
                f"Vault at {self.address} is unavailable: {_cause(error)}"
            ) from error
        except requests.exceptions.RequestException as error:
            raise VaultUnreachable(
                f"Vault at {self.address} is unreachable: {_cause(error)}"
            ) from error
        except hvac.exceptions.VaultError as error:
            identity = f", {who}" if who else ""
            raise VaultAuthError(
                f"Vault refused the Kubernetes login (mount {mount!r}, role {role!r}"
                f"{identity}): {_cause(error)}",
                hint="check the role's bound service accounts and the auth method's kubernetes_host",
            ) from error
        auth = answer.get("auth") or {}
        token = str(auth["client_token"])
        self.use_token(token)
        return Login(token, float(auth.get("lease_duration") or 0))

    # ---- a controller's calls -------------------------------------------------------------

    def _kv_call(self, what: str, call: Callable[[], T]) -> T | None:
        """Run `call` with the controller's error mapping; None when the path is absent."""
        try:
            return call()
        except hvac.exceptions.InvalidPath:
            return None
        except (hvac.exceptions.VaultDown, hvac.exceptions.VaultNotInitialized) as error:
            raise VaultUnavailable(f"Vault at {self.address} {self._why_down(error)}") from error
        except (
            hvac.exceptions.InternalServerError,
            hvac.exceptions.BadGateway,
            hvac.exceptions.RateLimitExceeded,
            hvac.exceptions.UnexpectedError,
        ) as error:
            raise VaultUnavailable(
                f"Vault at {self.address} failed to {what}: {_cause(error)}"
            ) from error
        except requests.exceptions.RequestException as error:
            raise VaultUnreachable(
                f"Vault at {self.address} is unreachable: {_cause(error)}"
            ) from error
        except (hvac.exceptions.Forbidden, hvac.exceptions.Unauthorized) as error:
            raise VaultAuthError(
                f"Vault refused to {what}: {_cause(error)}",
                hint="check the Vault token or role and its policies",
            ) from error
        except hvac.exceptions.VaultError as error:
            raise VaultError(f"Vault refused to {what}: {_cause(error)}") from error

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
        return f"is unavailable: {_cause(error)}"

    def kv_read(self, mount: str, path: str, version: str = "v2") -> dict[str, Any] | None:
        """The key/value map at `path` of the KV engine at `mount`; None if absent."""
        what = f"read {mount}/{path}"
        if version == "v2":
            answer = self._kv_call(
                what,
                lambda: self._client.secrets.kv.v2.read_secret_version(
                    path=path, mount_point=mount, raise_on_deleted_version=True
                ),
            )
            data = ((answer or {}).get("data") or {}).get("data")
        else:
            answer = self._kv_call(
                what, lambda: self._client.secrets.kv.v1.read_secret(path=path, mount_point=mount)
            )
            data = (answer or {}).get("data")
        return dict(data) if isinstance(data, dict) else None

    def lookup_token(self) -> None:
        """Prove the token works: Vault answers, is unsealed and accepts it."""
        self._kv_call("look up its own token", self._client.auth.token.lookup_self)

    # ---- the operator's reads and writes ----------------------------------------------------

    def read(self, path: str) -> dict[str, Any] | None:
        """GET /v1/<path>; None when nothing is there."""
        try:
            answer = self._call(f"read {path}", lambda: self._client.read(path))
        except PermanentError as error:
            if "404" in error.message or "not found" in error.message.lower():
                return None
            raise
        return dict(answer) if isinstance(answer, dict) else None

    def write(self, path: str, data: dict[str, Any]) -> None:
        self._call(f"write {path}", lambda: self._client.write_data(path, data=data))

    def list_mounts(self) -> dict[str, str]:
        """Secret engine path -> type."""
        data: dict[str, Any] = self._call(
            "list secret engines", self._client.sys.list_mounted_secrets_engines
        )
        return {
            p: str(v.get("type")) for p, v in data.get("data", data).items() if isinstance(v, dict)
        }

    def list_auth(self) -> dict[str, str]:
        """Auth method path -> type."""
        data: dict[str, Any] = self._call("list auth methods", self._client.sys.list_auth_methods)
        return {
            p: str(v.get("type")) for p, v in data.get("data", data).items() if isinstance(v, dict)
        }


def _seal_status(data: dict[str, Any]) -> SealStatus:
    return SealStatus(
        initialized=bool(data.get("initialized")),
        sealed=bool(data.get("sealed", True)),
        version=str(data.get("version", "")),
        threshold=int(data.get("t") or 0),
        shares=int(data.get("n") or 0),
        progress=int(data.get("progress") or 0),
    )


def _cause(error: Exception) -> str:
    errors = getattr(error, "errors", None)
    text = "; ".join(str(e) for e in errors) if errors else str(error).split(", on ")[0]
    return trim(redact.redact(text), 200) or type(error).__name__
