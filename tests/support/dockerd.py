"""A real Docker engine for tests: use the running one, or start dockerd and stop it after.

Used by the session-scoped `docker_engine` fixture. Debian's `docker.io` provides dockerd;
`.ci/run` installs it.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.support import processes

SOCKET = Path("/var/run/docker.sock")


def engine_answers(host: str = f"unix://{SOCKET}") -> bool:
    result = subprocess.run(
        ["docker", "-H", host, "version", "--format", "{{.Server.Version}}"],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    return result.returncode == 0 and bool(result.stdout.strip())


@dataclass
class DockerEngine:
    host: str
    process: subprocess.Popen[bytes] | None = None

    def stop(self) -> None:
        if self.process is not None:
            processes.stop(self.process, grace=20)
            self.process = None


def ensure_engine(workdir: Path) -> DockerEngine:
    """The running engine if there is one; else start dockerd (needs root) and wait for it."""
    host = f"unix://{SOCKET}"
    if shutil.which("docker") and engine_answers(host):
        return DockerEngine(host=host)
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise FileNotFoundError("dockerd is not installed (Debian: apt-get install docker.io)")
    process = processes.start([dockerd, "--host", host], workdir / "dockerd.log")
    engine = DockerEngine(host=host, process=process)
    try:
        processes.wait_for(lambda: engine_answers(host), timeout=60, what="dockerd to answer")
    except TimeoutError:
        engine.stop()
        raise
    return engine
