"""The `k3d` engine (default): a k3s cluster in Docker, made from a generated k3d config file.

The config file (`k3d.io/v1alpha5`, kind Simple) is written to the state directory and
handed to `k3d cluster create --config`, so what runs is inspectable and reproducible.
The kubeconfig goes to the state directory; ~/.kube/config is touched only with
--merge-kubeconfig. `platform down` deletes the cluster.

Called by the `cluster` stage and by `platform down`/`status` through the Engine seam.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from bootstrap.config import Settings
from bootstrap.engines.base import StepReporter
from bootstrap.state import PlatformState
from stacks.errors import PermanentError, PlatformError, TransientError

if TYPE_CHECKING:
    from stacks.kube.client import KubeClient

K3D_TIMEOUT_SECONDS = 300


def cluster_name(settings: Settings) -> str:
    return f"platform-{settings.name}"


def k3d_config(settings: Settings) -> dict[str, Any]:
    """The k3d Simple config for these settings (pure; tested against k3d's own validation)."""
    k3d = settings.k3d
    return {
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


def find_k3d() -> str | None:
    found = shutil.which("k3d")
    if found:
        return found
    local = Path.home() / ".platform" / "bin" / "k3d"
    return str(local) if local.is_file() else None


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
            self._client = KubeClient.from_kubeconfig(str(self.state.kubeconfig))
        return self._client

    def write_config(self) -> Path:
        self.state.ensure()
        self.config_path.write_text(yaml.safe_dump(k3d_config(self.settings), sort_keys=False))
        return self.config_path

    def _k3d(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        binary = find_k3d()
        if binary is None:
            raise PermanentError(
                "k3d is not installed",
                hint="install k3d v5 (https://k3d.io) or run `platform doctor` for the command",
            )
        try:
            return subprocess.run(
                [binary, *args], capture_output=True, text=True, timeout=timeout, check=False
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
                raise self._create_error(result.stderr)
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

    def _create_error(self, stderr: str) -> PermanentError:
        tail = stderr.strip()[-400:]
        image = self.settings.k3d.image
        if "pull" in stderr.lower() or (
            "image" in stderr.lower() and "not found" in stderr.lower()
        ):
            return PermanentError(
                f"k3d could not get the node image {image}: {tail}",
                hint=(
                    f"online: `docker pull {image}`; offline: load the bundle with "
                    "`platform up --images FILE` (made by `platform images save FILE` on a connected machine)"
                ),
            )
        return PermanentError(
            f"k3d could not create the cluster: {tail}",
            hint="run `platform doctor`; if a port is taken, change k3d.http_port/https_port/api_port",
        )

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
