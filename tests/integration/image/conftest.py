"""Fixtures for the image tests: a base image made here from Debian packages (cached by
tag across runs), the component image built on it through the real
`platform image build` once per test session, and a second, empty Docker engine."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bootstrap.images import COMPONENT_IMAGE
from tests.integration.image.baseimage import TAG as BASE_TAG
from tests.integration.image.baseimage import build_base_image
from tests.support import processes
from tests.support.binaries import in_ci
from tests.support.cli import json_events, run_platform
from tests.support.dockerd import DockerEngine, engine_answers


def docker(*args: str, timeout: float = 300, check: bool = True) -> str:
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} exited {result.returncode}: {result.stderr}")
    return result.stdout


def image_present(reference: str) -> bool:
    return bool(docker("images", "-q", reference).strip())


@pytest.fixture(scope="session")
def base_image(docker_engine: DockerEngine) -> str:
    """A slim Debian base made here (baseimage.py): debootstrap + docker import, built when absent."""
    try:
        seconds = build_base_image(docker_engine.host)
    except FileNotFoundError as error:
        if in_ci():
            pytest.fail(str(error), pytrace=False)
        pytest.skip(str(error))
    if seconds:
        print(f"\nbuilt {BASE_TAG} from Debian packages in {seconds:.1f}s")
    return BASE_TAG


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
        env={"DOCKER_HOST": os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary: dict[str, object] = next(
        e for e in json_events(result.stdout) if e.get("event") == "summary"
    )
    return summary


@pytest.fixture(scope="session")
def component_image(base_image: str) -> Iterator[ComponentImage]:
    """The pinned component image, built on the local base by the real CLI."""
    started = time.monotonic()
    summary = build_with_cli(base_image)
    seconds = time.monotonic() - started
    assert summary["tag"] == COMPONENT_IMAGE
    size = json.loads(docker("image", "inspect", COMPONENT_IMAGE))[0]["Size"]
    print(f"\n{COMPONENT_IMAGE}: {size / 1e6:.0f} MB, built in {seconds:.1f}s ({summary})")
    yield ComponentImage(COMPONENT_IMAGE, int(size), seconds, summary)


@dataclass
class SecondEngine:
    """A second dockerd with its own data root, exec root and socket: a fresh engine."""

    host: str
    root: Path
    process: subprocess.Popen[bytes]

    def docker(self, *args: str, timeout: float = 300, check: bool = True) -> str:
        return docker("-H", self.host, *args, timeout=timeout, check=check)


@pytest.fixture
def fresh_engine(docker_engine: DockerEngine) -> Iterator[SecondEngine]:
    dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
    # Short paths: containerd's sockets live under the exec root (108-byte limit).
    root = Path(tempfile.mkdtemp(prefix="ptd-", dir="/tmp"))
    host = f"unix://{root}/docker.sock"
    suffix = uuid.uuid4().hex[:8]
    namespace = f"ptd-{suffix}"
    # Its own bridge: with `--bridge none` dockerd deletes docker0, the first engine's.
    bridge = f"ptd{suffix[:6]}"
    subnet = f"10.213.{int(suffix[:2], 16)}"
    for command in (
        ["ip", "link", "add", "name", bridge, "type", "bridge"],
        ["ip", "addr", "add", f"{subnet}.1/24", "dev", bridge],
        ["ip", "link", "set", bridge, "up"],
    ):
        subprocess.run(command, check=True, capture_output=True)
    process = processes.start(
        [
            dockerd,
            "--host", host,
            "--data-root", str(root / "data"),
            "--exec-root", str(root / "exec"),
            "--pidfile", str(root / "docker.pid"),
            "--containerd-namespace", namespace,
            "--containerd-plugins-namespace", f"{namespace}-plugins",
            "--bridge", bridge,
            "--iptables=false",
            "--ip6tables=false",
        ],
        root / "dockerd.log",
    )  # fmt: skip
    engine = SecondEngine(host, root, process)
    try:
        processes.wait_for(lambda: engine_answers(host), timeout=60, what="a second dockerd")
        yield engine
    finally:
        processes.stop(process, grace=30)
        subprocess.run(["ip", "link", "delete", bridge], check=False, capture_output=True)
        subprocess.run(["rm", "-rf", str(root)], check=False)
