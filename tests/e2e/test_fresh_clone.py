"""The README's two commands, as a new user runs them: a fresh clone, a fresh virtualenv,
`pip install .`, then `platform up`, on a machine with Docker and nothing else of the
platform's (no k3d, no tofu, no terraform on PATH, an empty ~/.platform).

`platform up` gets as far as this machine allows: it downloads k3d and OpenTofu (from a
local stand-in for their releases, tests/support/releases.py, serving the real binaries
testenv built), builds the component image from the clone, and stops where k3d needs the
k3s node image, which no registry can give here, with the sentence a user without network
sees. The default base image cannot be pulled here either, so the image is built on the
base made here from Debian packages (PLATFORM_IMAGE_BASE; the commands are unchanged).
PyPI is reachable; pip's cache makes the install fast after the first time.

The figures (install, up) are printed for bench/README.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bootstrap.images import COMPONENT_IMAGE, K3S_IMAGE
from tests.support import processes
from tests.support.componentimage import docker, renderers_env
from tests.support.dockerd import DockerEngine
from tests.support.processes import free_port
from tests.support.releases import ReleaseServer, release_files, serve_releases

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def releases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReleaseServer]:
    with serve_releases(release_files(tmp_path_factory.mktemp("releases"))) as server:
        yield server


def run(
    args: list[str], cwd: Path, env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_the_readme_two_commands_in_a_fresh_clone_and_virtualenv(
    docker_engine: DockerEngine, base_image: str, releases: ReleaseServer, tmp_path: Path
) -> None:
    clone, venv, home = tmp_path / "platform", tmp_path / "venv", tmp_path / "home"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    bin_path = venv / "bin"
    env = {
        "HOME": os.environ.get("HOME", str(tmp_path)),  # pip's cache
        "PATH": os.pathsep.join([str(bin_path), "/usr/bin", "/bin"]),  # no k3d, tofu, terraform
        "PLATFORM_HOME": str(home),
        "PLATFORM_TEST_RUN": processes.RUN_ID,
        "DOCKER_HOST": os.environ.get("DOCKER_HOST", docker_engine.host),
        "NO_COLOR": "1",
    }

    # The README's first command.
    install = run([str(bin_path / "pip"), "install", "-q", "."], clone, env, timeout=900)
    assert install.returncode == 0, install.stderr[-3000:]
    installed = time.monotonic() - started

    # The README's second command; the environment only stands in for the network.
    env.update(releases.env())
    env.update(
        {
            "PLATFORM_IMAGE_BASE": base_image,
            **renderers_env(),  # helm and kustomize for the image, as testenv built them
            # Free ports, so no other listener on this machine decides the outcome.
            "PLATFORM_K3D_API_PORT": str(free_port()),
            "PLATFORM_K3D_HTTP_PORT": str(free_port()),
            "PLATFORM_K3D_HTTPS_PORT": str(free_port()),
        }
    )
    started = time.monotonic()
    up = run([str(bin_path / "platform"), "up"], clone, env, timeout=1500)
    up_seconds = time.monotonic() - started
    output = up.stdout + up.stderr
    print(f"\nfresh clone: venv + pip install {installed:.1f}s, platform up {up_seconds:.1f}s")

    assert up.returncode == 1, output
    # It fetched what this machine lacked ...
    assert "will download k3d v5.9.0 into" in output, output
    assert "[tools] done" in output, output
    k3d, tofu = home / "bin" / "k3d", home / "bin" / "tofu"
    assert os.access(k3d, os.X_OK) and os.access(tofu, os.X_OK)
    assert k3d.read_bytes() == releases.files["k3d"].read_bytes()
    assert "OpenTofu v1.6.2" in run([str(tofu), "version"], tmp_path, env, timeout=60).stdout
    assert sorted(releases.requests) == ["k3d-linux-amd64", "tofu_1.6.2_linux_amd64.zip"]
    # ... the component image in Docker is the clone's build ...
    clone_hash = run(
        [
            str(bin_path / "python"),
            "-c",
            "from bootstrap.docker.build import source_hash; print(source_hash())",
        ],
        tmp_path,
        env,
        timeout=60,
    ).stdout.strip()
    labels = json.loads(
        docker("image", "inspect", "--format", "{{json .Config.Labels}}", COMPONENT_IMAGE)
    )
    assert labels["io.platform.source"] == clone_hash
    # ... and it stopped creating the k3d cluster, with the sentence a user without network sees.
    assert "[cluster] creating k3d cluster platform-local" in output, output
    assert "[cluster] failed" in output
    sentence = " ".join(up.stderr.split())
    assert (
        f"Error: The k3d cluster needs the image {K3S_IMAGE}, which is not in Docker and could not be pulled"
        in sentence
    ), sentence
    assert "offline: load the bundle with `platform up --images FILE`" in sentence
    containers = docker("ps", "-a", "--format", "{{.Names}}").split()
    assert not [c for c in containers if c.startswith("k3d-platform-local")]
