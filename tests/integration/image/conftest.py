"""Fixtures for the image tests: a second, empty Docker engine. (The base image and the
component image built on it are session fixtures in tests/conftest.py.)"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import processes
from tests.support.componentimage import docker
from tests.support.dockerd import DockerEngine, engine_answers


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
