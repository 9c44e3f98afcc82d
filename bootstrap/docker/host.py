"""The Docker adapter: the only module that imports the `docker` SDK.

Used by preflight/doctor (is the engine reachable, how much memory and CPU it has, which
images are local), by `platform image build` (bootstrap/docker/build.py) and by the
offline bundle (`platform images save`, `platform up --images`: bootstrap/docker/bundle.py).
Errors come out as PlatformErrors with a hint.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stacks.errors import PermanentError, trim

BUILD_TIMEOUT_SECONDS = 900
ARCHIVE_TIMEOUT_SECONDS = 1800


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


@dataclass(frozen=True)
class BuiltImage:
    tag: str
    image_id: str
    size_bytes: int


def _error_text(error: Exception) -> str:
    return trim(str(getattr(error, "explanation", None) or error), 400)


def build_image(
    context: Path,
    tag: str,
    buildargs: dict[str, str] | None = None,
    on_line: Callable[[str], None] | None = None,
    nocache: bool = False,
    target: str | None = None,
    labels: dict[str, str] | None = None,
) -> BuiltImage:
    """Build `context` (with its Dockerfile) into `tag` without pulling anything new;
    with `target`, only up to that stage of a multi-stage Dockerfile.

    The build's output goes line by line to `on_line`; a failed step raises a
    PermanentError carrying the build's last lines.
    """
    import docker.errors

    client = _client(timeout=BUILD_TIMEOUT_SECONDS)
    tail: list[str] = []
    try:
        stream = client.api.build(
            path=str(context),
            tag=tag,
            buildargs=buildargs or {},
            rm=True,
            forcerm=True,
            pull=False,
            nocache=nocache,
            target=target,
            labels=labels,
            decode=True,
        )
        for chunk in stream:
            if "error" in chunk:
                lines = "\n".join(tail[-8:])
                raise PermanentError(
                    f"the image build failed: {trim(str(chunk['error']), 400)}\n{lines}",
                    hint=(
                        "read the build output above; a missing base image needs "
                        "`docker pull BASE` (online) or a bundle (`docker load`), and the "
                        "base's Python must have the same minor version as the one that "
                        "built the wheels"
                    ),
                )
            text = str(chunk.get("stream") or chunk.get("status") or "").rstrip()
            if text:
                for line in text.splitlines():
                    tail.append(line)
                    if on_line is not None:
                        on_line(line)
        image = client.images.get(tag)
        return BuiltImage(tag, str(image.id), int(image.attrs.get("Size", 0)))
    except docker.errors.APIError as error:
        raise PermanentError(
            f"the image build failed: {_error_text(error)}",
            hint="check the base image is present locally (`docker images`) and Docker has disk space",
        ) from error
    finally:
        client.close()


def image_labels(reference: str) -> dict[str, str] | None:
    """The labels of a local image; None when Docker does not have it."""
    import docker.errors

    client = _client()
    try:
        image = client.images.get(reference)
    except docker.errors.ImageNotFound:
        return None
    except docker.errors.APIError as error:
        raise PermanentError(
            f"failed to inspect the image {reference}: {_error_text(error)}",
            hint="check `docker image inspect` works",
        ) from error
    finally:
        client.close()
    return dict((image.attrs.get("Config") or {}).get("Labels") or {})


def pull_image(reference: str, on_line: Callable[[str], None] | None = None) -> None:
    """`docker pull` one image; a PermanentError carrying the registry's answer."""
    import docker.errors

    client = _client(timeout=BUILD_TIMEOUT_SECONDS)
    repository, _, tag = reference.rpartition(":")
    if not repository or "/" in tag:
        repository, tag = reference, "latest"
    try:
        if on_line is not None:
            on_line(f"pulling {reference}")
        client.images.pull(repository, tag=tag)
    except docker.errors.APIError as error:
        raise PermanentError(f"failed to pull {reference}: {_error_text(error)}") from error
    finally:
        client.close()


def prune_untagged(label: str) -> int:
    """Remove the untagged images carrying `label` (what earlier builds left behind);
    the bytes freed. Tagged images and the layers they use are kept."""
    import docker.errors

    client = _client(timeout=BUILD_TIMEOUT_SECONDS)
    try:
        answer = client.images.prune(filters={"dangling": True, "label": label})
    except docker.errors.APIError as error:
        raise PermanentError(
            f"failed to remove earlier builds' untagged images: {_error_text(error)}",
            hint=f"remove them by hand: docker image prune --filter label={label}",
        ) from error
    finally:
        client.close()
    return int(answer.get("SpaceReclaimed") or 0)


def image_sizes(references: list[str]) -> dict[str, int]:
    """Size in bytes of each reference present locally (absent ones are left out)."""
    import docker.errors

    client = _client()
    sizes: dict[str, int] = {}
    try:
        for reference in references:
            try:
                sizes[reference] = int(client.images.get(reference).attrs.get("Size", 0))
            except docker.errors.ImageNotFound:
                continue
        return sizes
    finally:
        client.close()


def save_images(references: list[str], path: Path) -> int:
    """`docker save` several images into one tar archive at `path`; its size in bytes."""
    import docker.errors

    client = _client(timeout=ARCHIVE_TIMEOUT_SECONDS)
    partial = path.with_name(path.name + ".partial")
    try:
        # The SDK saves one image per call; the engine's /images/get takes several names,
        # which keeps shared layers once in the archive.
        response = client.api._get(
            client.api._url("/images/get"), params={"names": references}, stream=True
        )
        client.api._raise_for_status(response)
        with open(partial, "wb") as out:
            for chunk in response.iter_content(chunk_size=1024 * 1024):
                out.write(chunk)
        partial.replace(path)
        return path.stat().st_size
    except docker.errors.APIError as error:
        partial.unlink(missing_ok=True)
        raise PermanentError(
            f"failed to save images to '{path}': {_error_text(error)}",
            hint="check every image is present (`docker images`) and the target has space",
        ) from error
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise PermanentError(
            f"failed to write the image archive '{path}': {error}",
            hint="choose a path on a disk with enough free space",
        ) from error
    finally:
        client.close()


def load_images(path: Path) -> list[str]:
    """`docker load` an archive; the tags it brought."""
    import docker.errors

    client = _client(timeout=ARCHIVE_TIMEOUT_SECONDS)
    try:
        with open(path, "rb") as archive:
            images = client.images.load(archive)
        return sorted({tag for image in images for tag in image.tags})
    except docker.errors.APIError as error:
        raise PermanentError(
            f"failed to load the image archive '{path}': {_error_text(error)}",
            hint="the file must come from `platform images save` (or `docker save`)",
        ) from error
    except OSError as error:
        raise PermanentError(
            f"failed to read the image archive '{path}': {error}",
            hint="check the path; make the archive with `platform images save FILE`",
        ) from error
    finally:
        client.close()


def remove_network_and_volume(network: str, volume: str) -> None:
    """Remove a network and a volume by name when they exist (leftovers of a failed k3d)."""
    import docker.errors

    client = _client()
    try:
        for collection, name in ((client.networks, network), (client.volumes, volume)):
            try:
                collection.get(name).remove()
            except docker.errors.NotFound:
                continue
            except docker.errors.APIError:
                continue  # in use (a cluster of that name runs): not a leftover
    finally:
        client.close()
