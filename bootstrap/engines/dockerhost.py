"""The Docker adapter: the only module that imports the `docker` SDK.

Used by preflight/doctor (is the engine reachable, how much memory and CPU it has) and by
the image commands. Errors come out as PlatformErrors with a hint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stacks.errors import PermanentError, trim


@dataclass(frozen=True)
class DockerInfo:
    server_version: str
    memory_bytes: int
    cpus: int
    operating_system: str


def _client(timeout: int = 10) -> Any:
    import docker
    import docker.errors

    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except docker.errors.DockerException as error:
        text = str(error)
        if "FileNotFoundError" in text or "No such file" in text:
            cause = "its socket does not exist (the Docker daemon is not running)"
        elif "PermissionError" in text or "Permission denied" in text:
            cause = "permission denied on its socket (add yourself to the docker group)"
        elif "Connection refused" in text:
            cause = "the connection was refused (the Docker daemon is not running)"
        else:
            cause = trim(text, 200)
        raise PermanentError(
            f"Docker is not reachable: {cause}",
            hint="start Docker (Docker Desktop, or `sudo systemctl start docker`) and check `docker info` works",
        ) from error
    return client


def docker_info() -> DockerInfo:
    client = _client()
    try:
        info = client.info()
    finally:
        client.close()
    return DockerInfo(
        server_version=str(info.get("ServerVersion", "?")),
        memory_bytes=int(info.get("MemTotal", 0)),
        cpus=int(info.get("NCPU", 0)),
        operating_system=str(info.get("OperatingSystem", "?")),
    )


def local_images() -> set[str]:
    """Every repo:tag present in the local engine."""
    client = _client()
    try:
        return {tag for image in client.images.list() for tag in image.tags}
    finally:
        client.close()
