"""The `k3d` engine (default): a k3s cluster in Docker, made from a generated k3d config file.

The config file (`k3d.io/v1alpha5`, kind Simple) is written to the state directory and
handed to `k3d cluster create --config`, so what runs is inspectable and reproducible.
The kubeconfig goes to the state directory; ~/.kube/config is touched only with
--merge-kubeconfig. `platform down` deletes the cluster.

Images (all pinned in bootstrap/images.py): k3d's helper images are pinned through its
K3D_IMAGE_* environment; an offline bundle recorded by `platform up --images` is mounted
into k3s's airgap images directory, so k3s imports it before it would pull; after the
cluster exists the component image is copied in with `k3d image import --mode direct`
(no registry, no tools image).

Called by the `cluster` stage and by `platform down`/`status` through the Engine seam.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from bootstrap.config import Settings
from bootstrap.engines.base import StepReporter
from bootstrap.images import (
    COMPONENT_IMAGE,
    K3D_IMAGE_ENV,
    K3S_AIRGAP_DIR,
    all_images,
    pinned,
)
from bootstrap.state import PlatformState
from stacks.errors import PermanentError, PlatformError, TransientError

if TYPE_CHECKING:
    from stacks.kube.client import KubeClient

K3D_TIMEOUT_SECONDS = 300
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


def _pull_cause(output: str, image: str) -> str:
    """The words after k3d's 'failed to pull' for `image` (e.g. the registry's DNS error)."""
    for line in reversed(output.splitlines()):
        if image in line and "pull" in line.lower():
            cause = line.rsplit("Error response from daemon:", 1)[-1].strip()
            return cause[-300:] or "pull failed"
    return "the image is not local and could not be pulled"


def cluster_name(settings: Settings) -> str:
    return f"platform-{settings.name}"


AIRGAP_ARCHIVE = f"{K3S_AIRGAP_DIR}/platform-images.tar"


def k3d_config(settings: Settings, images_archive: Path | None = None) -> dict[str, Any]:
    """The k3d Simple config for these settings (pure; tested against k3d's own validation).

    With `images_archive` (the offline bundle), every node mounts it read-only into k3s's
    airgap images directory."""
    k3d = settings.k3d
    config: dict[str, Any] = {
        "apiVersion": "k3d.io/v1alpha5",
        "kind": "Simple",
        "metadata": {"name": cluster_name(settings)},
        "servers": k3d.servers,
        "agents": k3d.agents,
        "image": k3d.image,
        "kubeAPI": {"host": "127.0.0.1", "hostIP": "127.0.0.1", "hostPort": str(k3d.api_port)},
        "ports": [
            {"port": f"127.0.0.1:{k3d.http_port}:80", "nodeFilters": ["loadbalancer"]},
            {"port": f"127.0.0.1:{k3d.https_port}:443", "nodeFilters": ["loadbalancer"]},
        ],
        "options": {
            "k3d": {"wait": True, "timeout": f"{K3D_TIMEOUT_SECONDS}s"},
            "k3s": {
                "extraArgs": [
                    # The platform brings its own metrics-free, small footprint.
                    {"arg": "--disable=metrics-server", "nodeFilters": ["server:*"]},
                ],
                "nodeLabels": [
                    {"label": f"platform.local/name={settings.name}", "nodeFilters": ["server:*"]}
                ],
            },
            "kubeconfig": {"updateDefaultKubeconfig": False, "switchCurrentContext": False},
        },
    }
    if images_archive is not None:
        config["volumes"] = [
            {
                "volume": f"{images_archive}:{AIRGAP_ARCHIVE}:ro",
                "nodeFilters": ["server:*", "agent:*"],
            }
        ]
    return config


def missing_image_hint(image: str) -> str:
    """How to provide an image k3d could not get: online pull, offline bundle."""
    known = pinned(image)
    online = (
        f"online: `{known.how_to_get()}`" if known is not None else f"online: `docker pull {image}`"
    )
    return (
        f"{online}; offline: load the bundle with `platform up --images FILE` "
        "(made by `platform images save FILE` on a connected machine)"
    )


def find_k3d() -> str | None:
    found = shutil.which("k3d")
    if found:
        return found
    from bootstrap.tools import K3D, installed

    local = installed(K3D)
    return str(local) if local is not None else None


class K3dEngine:
    name = "k3d"

    def __init__(self, settings: Settings, state: PlatformState) -> None:
        self.settings = settings
        self.state = state
        self._client: KubeClient | None = None

    @property
    def config_path(self) -> Path:
        return self.state.root / "k3d.yaml"

    def kubeconfig_path(self) -> str:
        return str(self.state.kubeconfig)

    def context(self) -> str | None:
        return None

    def client(self) -> KubeClient:
        if self._client is None:
            from stacks.kube.client import KubeClient

            if not self.state.kubeconfig.exists():
                raise PermanentError(
                    f"platform {self.settings.name!r} has no cluster yet",
                    hint="run `platform up` to create it",
                )
            from bootstrap.engines import kubeconfig

            path = str(self.state.kubeconfig)
            self._client = kubeconfig.load(path, lambda: KubeClient.from_kubeconfig(path))
        return self._client

    def write_config(self) -> Path:
        from bootstrap.docker.bundle import recorded_bundle

        self.state.ensure()
        config = k3d_config(self.settings, recorded_bundle(self.state))
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        return self.config_path

    def _k3d(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        binary = find_k3d()
        if binary is None:
            raise PermanentError(
                "k3d is not installed",
                hint="install k3d v5 (https://k3d.io) or run `platform doctor` for the command",
            )
        # k3d's helper images (load balancer, tools) are the pinned ones, never k3d's default.
        env = {**os.environ, **K3D_IMAGE_ENV}
        try:
            return subprocess.run(
                [binary, *args],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                env=env,
            )
        except subprocess.TimeoutExpired as error:
            raise TransientError(
                f"`k3d {' '.join(args[:2])}` did not answer within {timeout:.0f}s"
            ) from error

    def exists(self) -> bool:
        result = self._k3d("cluster", "list", "-o", "json")
        if result.returncode != 0:
            raise TransientError(f"`k3d cluster list` failed: {result.stderr.strip()[-300:]}")
        return any(
            c.get("name") == cluster_name(self.settings) for c in json.loads(result.stdout or "[]")
        )

    def plan(self) -> list[str]:
        return [
            f"write {self.config_path}",
            f"k3d cluster create {cluster_name(self.settings)} ({self.settings.k3d.servers} server, "
            f"{self.settings.k3d.agents} agents, {self.settings.k3d.image})",
            f"write the kubeconfig to {self.state.kubeconfig}",
        ]

    def is_ready(self) -> tuple[bool, str]:
        try:
            if not self.exists():
                return False, f"k3d cluster {cluster_name(self.settings)} does not exist"
            version = self.client().server_version()
        except PlatformError as error:
            return False, str(error)
        return (
            True,
            f"k3s {version.get('gitVersion', '?')} in k3d cluster {cluster_name(self.settings)}",
        )

    def ensure(self, step: StepReporter) -> str:
        name = cluster_name(self.settings)
        config = self.write_config()
        if not self.exists():
            step(
                f"creating k3d cluster {name} (this pulls {self.settings.k3d.image} when it is not local)"
            )
            result = self._k3d(
                "cluster", "create", "--config", str(config), timeout=K3D_TIMEOUT_SECONDS + 60
            )
            if result.returncode != 0:
                error = self._create_error(result.stdout + result.stderr)
                self._remove_leftovers()
                raise error
        self.import_images(step, self._images_to_import())
        step("writing the kubeconfig")
        kubeconfig = self._k3d("kubeconfig", "get", name)
        if kubeconfig.returncode != 0:
            raise PermanentError(
                f"`k3d kubeconfig get {name}` failed: {kubeconfig.stderr.strip()[-300:]}"
            )
        self.state.write_kubeconfig(kubeconfig.stdout)
        if self.settings.merge_kubeconfig:
            self._k3d("kubeconfig", "merge", name, "--kubeconfig-merge-default")
        self._client = None
        step("waiting for the API server")
        version = self.client().server_version()
        return f"k3s {version.get('gitVersion', '?')} in k3d cluster {name}"

    def _images_to_import(self) -> tuple[str, ...]:
        """The component image, plus (without a bundle in the airgap directory) every other
        pinned in-cluster image Docker has, so k3s need not pull what is already here."""
        from bootstrap.docker.bundle import recorded_bundle
        from bootstrap.docker.host import local_images
        from bootstrap.images import normalise

        if recorded_bundle(self.state) is not None:
            return (COMPONENT_IMAGE,)
        local = {normalise(tag) for tag in local_images()}
        others = tuple(
            i.reference
            for i in all_images()
            if not i.host and i.reference != COMPONENT_IMAGE and normalise(i.reference) in local
        )
        return (COMPONENT_IMAGE, *others)

    def import_images(
        self, step: StepReporter, images: tuple[str, ...] = (COMPONENT_IMAGE,)
    ) -> None:
        """Copy local images into every node (`k3d image import --mode direct`): the
        component image is built here and no registry has it."""
        from bootstrap.docker.host import local_images
        from bootstrap.images import normalise

        local = {normalise(tag) for tag in local_images()}
        missing = [image for image in images if normalise(image) not in local]
        if missing:
            raise PermanentError(
                f"the image {missing[0]} is not in the local Docker engine, so the cluster cannot run it",
                hint=(
                    "build it with `platform image build` (or load an offline bundle with "
                    "`platform up --images FILE`), then run `platform up` again"
                ),
            )
        name = cluster_name(self.settings)
        step(f"importing {', '.join(images)} into k3d cluster {name}")
        result = self._k3d(
            "image", "import", "--mode", "direct", "--cluster", name, *images, timeout=600
        )
        if result.returncode != 0:
            raise PermanentError(
                f"`k3d image import` into {name} failed: {(result.stdout + result.stderr).strip()[-400:]}",
                hint="check the cluster runs (`k3d cluster list`), then run `platform up` again",
            )

    def _create_error(self, output: str) -> PermanentError:
        text = ANSI_ESCAPE.sub("", output)
        lowered = text.lower()
        if "pull" in lowered or ("image" in lowered and "not found" in lowered):
            image = self._failed_image(text)
            return PermanentError(
                f"the k3d cluster needs the image {image}, which is not in Docker and "
                f"could not be pulled ({_pull_cause(text, image)})",
                hint=missing_image_hint(image),
            )
        return PermanentError(
            f"k3d could not create the cluster: {text.strip()[-400:]}",
            hint="run `platform doctor`; if a port is taken, change k3d.http_port/https_port/api_port",
        )

    def _remove_leftovers(self) -> None:
        """A failed `k3d cluster create` can leave its network and image volume behind
        ("also FAILED to rollback"); remove them so the next attempt starts clean."""
        from bootstrap.docker.host import remove_network_and_volume

        name = cluster_name(self.settings)
        self._k3d("cluster", "delete", name, timeout=120)
        remove_network_and_volume(f"k3d-{name}", f"k3d-{name}-images")

    def _failed_image(self, output: str) -> str:
        """Which image k3d failed on: a pinned one named in its output, else the node image."""
        references = [self.settings.k3d.image] + [i.reference for i in all_images()]
        for line in reversed(output.splitlines()):
            if not re.search(r"pull|not found|no such image", line, re.IGNORECASE):
                continue
            for reference in references:
                if reference in line:
                    return reference
        return self.settings.k3d.image

    def destroy(self, step: StepReporter) -> str:
        name = cluster_name(self.settings)
        if find_k3d() is None or not self.exists():
            return f"k3d cluster {name} is already gone"
        step(f"deleting k3d cluster {name}")
        result = self._k3d("cluster", "delete", name, timeout=180)
        if result.returncode != 0:
            raise PermanentError(
                f"`k3d cluster delete {name}` failed: {result.stderr.strip()[-300:]}",
                hint=f"delete it by hand with `k3d cluster delete {name}`",
            )
        return f"deleted k3d cluster {name}"

    def owns_cluster(self) -> bool:
        return True
