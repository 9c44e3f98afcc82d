"""The component image carries helm and kustomize (issue 18): the reconciler renders
charts and kustomizations in the pod with them. The tests' image gets testenv's builds
(PLATFORM_TEST_RENDERERS, tests/support/componentimage.py); both run as the image's user."""

from __future__ import annotations

import pytest

from bootstrap.images import COMPONENT_IMAGE
from bootstrap.pins import HELM_VERSION, KUSTOMIZE_VERSION
from tests.support.componentimage import ComponentImage, docker

pytestmark = pytest.mark.integration


def test_image_carries_helm_and_kustomize(component_image: ComponentImage) -> None:
    def run(binary: str, *args: str) -> str:
        return docker(
            "run",
            "--rm",
            "--read-only",
            "--tmpfs",
            "/tmp",
            "--entrypoint",
            binary,
            COMPONENT_IMAGE,
            *args,
            timeout=120,
        )

    assert HELM_VERSION in run("helm", "version", "--short")
    assert KUSTOMIZE_VERSION in run("kustomize", "version")
