"""A component's shipped manifests: stacks/<component>/manifests/*.yaml, placeholders filled.

Placeholders are written `${NAME}` (COMPONENT_IMAGE, DOMAIN, VAULT_IMAGE, ...); a `$`
in any other form (CRD patterns, shell) is left alone, and a placeholder with no value
is an error naming the file, never a silently empty field. Files are read as package
data, so an installed wheel finds them too.

Used by the install helpers (reconciler, secrets), the vault stage, and the renderer of
the GitOps repository.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib import resources

import yaml

from stacks.errors import PermanentError
from stacks.kube.objects import KubeObject

PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


def fill(text: str, values: Mapping[str, str], source: str) -> str:
    """Replace every `${NAME}` in `text`; an unknown NAME is a PermanentError."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise PermanentError(
                f"{source} uses the placeholder ${{{name}}}, which has no value",
                hint=f"give {name} a value where this component's manifests are rendered",
            )
        return values[name]

    return PLACEHOLDER.sub(value, text)


def component_manifests(component: str, values: Mapping[str, str]) -> list[KubeObject]:
    """Every object of stacks/<component>/manifests/, in file order, placeholders filled."""
    folder = resources.files(f"stacks.{component}") / "manifests"
    objects: list[KubeObject] = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".yaml"):
            continue
        text = fill(entry.read_text(), values, f"stacks/{component}/manifests/{entry.name}")
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects
