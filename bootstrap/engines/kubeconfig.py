"""Reading a kubeconfig file the user named, with one sentence naming the file when it
is not one (random bytes, YAML of the wrong shape), before the Kubernetes client library
sees it: the library answers those with TypeError or AttributeError.

Called by the engines (`existing` and `k3d`) before they build their client.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from bootstrap.config import ConfigError

T = TypeVar("T")
HINT = (
    "point --kubeconfig (or $KUBECONFIG) at a kubeconfig file, e.g. one written by "
    "`kubectl config view --raw`, then run the command again"
)
# section -> the key each of its entries must hold, as kubectl writes them
SECTIONS = {"clusters": "cluster", "contexts": "context", "users": "user"}


def check(path: str) -> None:
    """Raise ConfigError (bad usage, exit 2) naming `path` when it cannot be a kubeconfig; a missing file
    is left to the client library, whose message already names it."""
    if not path:  # the library's default (~/.kube/config), checked by it
        return
    file = Path(path).expanduser()
    if not file.exists():
        return
    if file.is_dir():
        raise ConfigError(f"the kubeconfig {path} is a directory, not a file", hint=HINT)
    try:
        data: Any = yaml.safe_load(file.read_bytes())
    except (yaml.YAMLError, UnicodeDecodeError, ValueError) as error:
        raise ConfigError(
            f"the kubeconfig {path} is not YAML ({type(error).__name__})", hint=HINT
        ) from error
    except OSError as error:
        raise ConfigError(
            f"cannot read the kubeconfig {path}: {error.strerror}", hint=HINT
        ) from error
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"the kubeconfig {path} holds {_kind(data)}, not a kubeconfig mapping", hint=HINT
        )
    for section, inner in SECTIONS.items():
        entries = data.get(section)
        if entries is None:
            continue
        if not isinstance(entries, list):
            raise ConfigError(
                f"the kubeconfig {path} has `{section}` as {_kind(entries)}, not a list",
                hint=HINT,
            )
        for index, entry in enumerate(entries):
            if not (
                isinstance(entry, Mapping)
                and isinstance(entry.get("name"), str)
                and isinstance(entry.get(inner), Mapping)
            ):
                raise ConfigError(
                    f"the kubeconfig {path} has a malformed entry {section}[{index}] "
                    f"(each needs `name` and a `{inner}` mapping)",
                    hint=HINT,
                )


def load(path: str, build: Callable[[], T]) -> T:
    """`check(path)`, then `build()` (the client), with whatever the library still raises
    on a malformed file turned into the same sentence."""
    check(path)
    try:
        return build()
    except (TypeError, AttributeError, KeyError, ValueError) as error:
        raise ConfigError(
            f"the kubeconfig {path} is malformed ({type(error).__name__}: {error})", hint=HINT
        ) from error


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    names = {str: "a string", int: "a number", float: "a number", bool: "a boolean"}
    return names.get(type(value), f"a {type(value).__name__}")
