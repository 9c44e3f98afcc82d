"""Rendering the shipped manifests: placeholders filled, other `$` left, gaps refused."""

from __future__ import annotations

import pytest

from stacks.errors import PermanentError
from stacks.manifests import component_manifests, fill


def test_fill_replaces_placeholders_and_leaves_other_dollars() -> None:
    text = 'image: ${COMPONENT_IMAGE}\npattern: "^[a-z]+$"\nshell: echo $HOME\n'
    assert fill(text, {"COMPONENT_IMAGE": "platform:1"}, "x.yaml") == (
        'image: platform:1\npattern: "^[a-z]+$"\nshell: echo $HOME\n'
    )


def test_a_placeholder_without_value_names_the_file_and_line() -> None:
    with pytest.raises(PermanentError, match=r"x.yaml:2 uses the placeholder \$\{DOMAIN\}"):
        fill("kind: Ingress\nhost: git.${DOMAIN}\n", {}, "x.yaml")


@pytest.mark.parametrize(
    "component", ["reconciler", "secrets", "certs", "dns", "gitserver", "vault"]
)
def test_every_component_renders_with_the_platform_values(component: str) -> None:
    values = {"COMPONENT_IMAGE": "platform:1", "DOMAIN": "localdev.me", "VAULT_IMAGE": "bao:2"}
    objects = component_manifests(component, values)
    assert objects and all("kind" in o and "metadata" in o for o in objects)
    assert "${" not in repr(objects)
