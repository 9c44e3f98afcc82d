"""The project's component image as the tests get it: built by the real CLI on a base
made here from Debian packages (tests/support/baseimage.py), once per test session.

Used by the session-scoped `base_image` and `component_image` fixtures in
tests/conftest.py: the image tests inspect it, and the real-node cluster imports it into
its containerd so the platform's pods run it.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass

from bootstrap.docker import renderers
from bootstrap.images import COMPONENT_IMAGE
from tests.support.binaries import require_binary
from tests.support.cli import json_events, run_platform


def docker(*args: str, timeout: float = 300, check: bool = True) -> str:
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} exited {result.returncode}: {result.stderr}")
    return result.stdout


def image_present(reference: str) -> bool:
    return bool(docker("images", "-q", reference).strip())


def renderers_env() -> dict[str, str]:
    """helm and kustomize as testenv built them, for every image build in the tests (the
    fixture's, and those `platform up` runs): the tests reach no release site, and two
    builds with different bin/ contents would make different images under one tag."""
    return {
        renderers.OVERRIDE: json.dumps(
            {name: str(require_binary(name)) for name in ("helm", "kustomize")}
        )
    }


@dataclass(frozen=True)
class ComponentImage:
    tag: str
    size_bytes: int
    seconds: float
    summary: dict[str, object]


def build_with_cli(base: str) -> dict[str, object]:
    """`platform image build --base BASE` through the real CLI; its JSON summary."""
    result = run_platform(
        "image",
        "build",
        "--base",
        base,
        "--output",
        "json",
        timeout=1200,
        env={
            "DOCKER_HOST": os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock"),
            **renderers_env(),
        },
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary: dict[str, object] = next(
        e for e in json_events(result.stdout) if e.get("event") == "summary"
    )
    return summary


def build_component_image(base: str) -> ComponentImage:
    """The pinned component image, built on `base` by the real CLI."""
    started = time.monotonic()
    summary = build_with_cli(base)
    seconds = time.monotonic() - started
    assert summary["tag"] == COMPONENT_IMAGE
    size = json.loads(docker("image", "inspect", COMPONENT_IMAGE))[0]["Size"]
    print(f"\n{COMPONENT_IMAGE}: {size / 1e6:.0f} MB, built in {seconds:.1f}s ({summary})")
    return ComponentImage(COMPONENT_IMAGE, int(size), seconds, summary)
