"""The Vault/OpenBao HTTP adapter: the only module here that imports `hvac`.

Seal status, initialisation, unsealing, Kubernetes login and reads, with every library
error wrapped into the `stacks.errors` tree at this boundary. Messages carry Vault's
own error text (trimmed) and never a key or token: requests are not echoed.

Called by the unsealer (unsealer.py), the `vault` and `terraform` stages and
`platform vault ...`.
"""

from __future__ import annotations

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


class VaultUnreachable(TransientError):
    """No answer from Vault (connection refused, timeout, 502/503 from a proxy)."""


class UnsealFailed(PermanentError):
    """The keys given do not unseal this Vault (wrong keys, or too few)."""


class VaultApi:
    """One Vault address, optionally with a token."""

    def __init__(self, address: str, token: str = "", timeout: float = 5.0) -> None:
        self.address = address.rstrip("/")
        redact.register(token)
        self._client = hvac.Client(url=self.address, token=token or None, timeout=timeout)

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
            raise PermanentError(
                f"failed to {what}: permission denied ({_cause(error)})",
                hint="use a token with the needed policy (the root token from `platform vault credentials --show-root-token`)",
            ) from None
        except (
            hvac.exceptions.BadGateway,
            hvac.exceptions.InternalServerError,
            hvac.exceptions.RateLimitExceeded,
        ) as error:
            raise TransientError(f"failed to {what}: {_cause(error)}") from None
        except hvac.exceptions.VaultError as error:
            raise PermanentError(f"failed to {what}: {_cause(error)}") from None

    def _call(self, what: str, work: Callable[[], T]) -> T:
        with self._wrapped(what):
            return work()
        raise AssertionError("unreachable")  # pragma: no cover - for mypy

    # ---- seal ---------------------------------------------------------------------------

    def status(self) -> SealStatus:
        data: dict[str, Any] = self._call("read seal status", self._client.sys.read_seal_status)
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

    def kubernetes_login(self, role: str, jwt: str, mount: str = "kubernetes") -> str:
        """Log in with a ServiceAccount token; returns the Vault token."""
        redact.register(jwt)
        answer: dict[str, Any] = self._call(
            f"log in to Vault with Kubernetes role {role!r}",
            lambda: self._client.auth.kubernetes.login(role=role, jwt=jwt, mount_point=mount),
        )
        token = str(answer["auth"]["client_token"])
        redact.register(token)
        return token

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


def _cause(error: hvac.exceptions.VaultError) -> str:
    errors = getattr(error, "errors", None)
    text = "; ".join(str(e) for e in errors) if errors else str(error).split(", on ")[0]
    return trim(redact.redact(text), 200) or type(error).__name__
