"""A component's shipped manifests: stacks/<component>/manifests/*.yaml, placeholders filled.

Placeholders are written `${NAME}` (COMPONENT_IMAGE, DOMAIN, VAULT_IMAGE, ...); a `$`
in any other form (CRD patterns, shell) is left alone, and a placeholder with no value
is an error naming the file and line, never a silently empty field. Files are read as package
data, so an installed wheel finds them too.

Used by the install helpers (reconciler, secrets), the vault stage, and the renderer of
the GitOps repository.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib import resources
from importlib.abc import Traversable

import yaml

from stacks.errors import PermanentError
from stacks.kube.objects import KubeObject

PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


def fill(text: str, values: Mapping[str, str], source: str) -> str:
    """Replace every `${NAME}` in `text`; an unknown NAME is a PermanentError that names
    `source` and the line ("gitops-template/apps/demo/x.yaml:12 uses ${FOO}, ...")."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            line = text.count("\n", 0, match.start()) + 1
            raise PermanentError(
                f"{source}:{line} uses the placeholder ${{{name}}}, which has no value",
                hint=f"give {name} a value where this file is rendered, or fix the placeholder's name",
            )
        return values[name]

    return PLACEHOLDER.sub(value, text)


def _manifest_entries(component: str) -> list[Traversable]:
    folder = resources.files(f"stacks.{component}") / "manifests"
    return sorted((e for e in folder.iterdir() if e.name.endswith(".yaml")), key=lambda e: e.name)


def component_files(component: str) -> list[tuple[str, str]]:
    """(file name, raw text) of stacks/<component>/manifests/*.yaml, in file order.

    For the GitOps repository renderer, which keeps each file's comments and fills the
    placeholders itself."""
    return [(entry.name, entry.read_text()) for entry in _manifest_entries(component)]


def component_manifests(component: str, values: Mapping[str, str]) -> list[KubeObject]:
    """Every object of stacks/<component>/manifests/, in file order, placeholders filled."""
    objects: list[KubeObject] = []
    for entry in _manifest_entries(component):
        text = fill(entry.read_text(), values, f"stacks/{component}/manifests/{entry.name}")
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects
