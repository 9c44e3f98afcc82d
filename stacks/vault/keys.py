"""The unseal keys and root token of one Vault, and how they are stored.

One value type, `InitKeys`, with its two stored forms: the 0600 file
`~/.platform/<name>/secrets/vault-init.json` (written by the `vault` stage) and the data
of the Kubernetes Secret `vault-init` in namespace `platform-vault` (read by the
unsealer in the cluster). Also reads the JSON `bao operator init -format=json` prints,
so a user can hand over an existing Vault's keys file. Pure: no I/O but parsing.

Every loaded key and token is registered with `stacks.redact` at once.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from stacks import redact
from stacks.errors import PermanentError

SECRET_NAME = "vault-init"  # noqa: S105 - a name, not a value
NAMESPACE = "platform-vault"
FILE_NAME = "vault-init.json"


@dataclass(frozen=True)
class InitKeys:
    """What `sys/init` returned. `repr` never shows the values."""

    keys: tuple[str, ...]
    root_token: str = ""
    threshold: int = 0

    def __post_init__(self) -> None:
        redact.register(self.root_token, *self.keys)

    def __repr__(self) -> str:
        return f"InitKeys({len(self.keys)} keys, threshold {self.threshold}, root token: {'yes' if self.root_token else 'no'})"

    def to_json(self) -> str:
        return (
            json.dumps(
                {
                    "unseal_keys_hex": list(self.keys),
                    "root_token": self.root_token,
                    "key_threshold": self.threshold,
                },
                indent=2,
            )
            + "\n"
        )

    def to_secret_data(self) -> dict[str, str]:
        """Secret `data` (base64) for the `vault-init` Secret."""
        return {
            "unseal-keys": _b64(json.dumps(list(self.keys))),
            "root-token": _b64(self.root_token),
            "key-threshold": _b64(str(self.threshold)),
        }

    @classmethod
    def from_json(cls, text: str, source: str) -> InitKeys:
        """Our file format, or the output of `bao/vault operator init -format=json`."""
        try:
            data: Any = json.loads(text)
        except json.JSONDecodeError as error:
            raise PermanentError(
                f"the unseal keys in {source} are not valid JSON (line {error.lineno})",
                hint=f"restore {source} from a backup of `bao operator init -format=json`",
            ) from None
        if not isinstance(data, dict):
            raise PermanentError(f"the unseal keys in {source} are not a JSON object")
        keys = data.get("unseal_keys_hex") or data.get("keys") or data.get("unseal_keys_b64")
        if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
            raise PermanentError(
                f"{source} holds no unseal keys (expected a list `unseal_keys_hex`)",
                hint=f"restore {source} from a backup of `bao operator init -format=json`",
            )
        threshold = data.get("key_threshold") or data.get("unseal_threshold") or 0
        return cls(tuple(keys), str(data.get("root_token") or ""), int(threshold))

    @classmethod
    def from_secret_data(cls, data: dict[str, str], source: str) -> InitKeys:
        try:
            keys = json.loads(base64.b64decode(data["unseal-keys"]).decode())
            root = base64.b64decode(data.get("root-token", "")).decode()
            threshold = int(base64.b64decode(data.get("key-threshold", "")).decode() or 0)
        except (KeyError, ValueError) as error:
            raise PermanentError(
                f"the Secret {source} does not hold unseal keys in the expected form "
                f"({type(error).__name__})",
                hint="re-create it from ~/.platform/<name>/secrets/vault-init.json",
            ) from None
        if not isinstance(keys, list) or not keys:
            raise PermanentError(f"the Secret {source} holds no unseal keys")
        return cls(tuple(str(k) for k in keys), root, threshold)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()
