"""The offline bundle and the k3d path, against the real Docker engine and the real k3d.

`platform images save` writes every pinned image present here into one archive (the
others are named with how to get them); `platform up --images` loads it into a fresh,
empty Docker engine without any pull, and the k3d engine mounts it into k3s's airgap
images directory. k3d then runs up to the point where it needs rancher/k3s, which no
registry can give here, and `platform up` says how to provide it (pull or bundle).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from bootstrap.images import COMPONENT_IMAGE, K3S_IMAGE, all_images
from tests.integration.image.conftest import SecondEngine
from tests.support.binaries import require_binary
from tests.support.cli import json_events, run_platform
from tests.support.componentimage import ComponentImage, docker
from tests.support.dockerd import DockerEngine
from tests.support.processes import free_port

pytestmark = pytest.mark.integration


def _k3d_env(docker_host: str | None = None) -> dict[str, str]:
    k3d = require_binary("k3d")
    env = {
        "PATH": f"{k3d.parent}{os.pathsep}{os.environ['PATH']}",
        # Free ports, so no other test's listener decides the outcome.
        "PLATFORM_K3D_API_PORT": str(free_port()),
        "PLATFORM_K3D_HTTP_PORT": str(free_port()),
        "PLATFORM_K3D_HTTPS_PORT": str(free_port()),
    }
    if docker_host:
        env["DOCKER_HOST"] = docker_host
    return env


def _assert_no_k3d_leftovers(name: str, docker_host: str | None = None) -> None:
    prefix = ["-H", docker_host] if docker_host else []
    networks = docker(*prefix, "network", "ls", "--format", "{{.Name}}").split()
    volumes = docker(*prefix, "volume", "ls", "--format", "{{.Name}}").split()
    containers = docker(*prefix, "ps", "-a", "--format", "{{.Names}}").split()
    cluster = f"k3d-platform-{name}"
    assert not [n for n in networks + volumes + containers if n.startswith(cluster)]


def _assert_says_how_to_provide_k3s(output: str) -> None:
    assert f"needs the image {K3S_IMAGE}" in output, output
    assert f"docker pull {K3S_IMAGE}" in output, output
    assert "platform up --images FILE" in output and "platform images save FILE" in output


def test_images_save_then_up_images_loads_them_into_a_fresh_engine_without_pulls(
    component_image: ComponentImage,
    base_image: str,
    fresh_engine: SecondEngine,
    tmp_path: Path,
) -> None:
    archive = tmp_path / "bundle" / "platform-images.tar"
    saved = run_platform(
        "images", "save", str(archive), "--include", base_image, "--output", "json", timeout=600
    )
    assert saved.returncode == 0, saved.stdout + saved.stderr
    summary = next(e for e in json_events(saved.stdout) if e["event"] == "summary")
    assert set(summary["saved"]) == {COMPONENT_IMAGE, base_image}
    missing = {m["image"]: m["get"] for m in summary["missing"]}
    pinned = {i.reference for i in all_images()}
    assert set(missing) == pinned - {COMPONENT_IMAGE}  # nothing else can be pulled here
    assert missing[K3S_IMAGE] == f"docker pull {K3S_IMAGE}"
    assert archive.stat().st_size == summary["size_bytes"] > 100 * 1024 * 1024
    print(f"\nbundle: {summary['size_bytes'] / 1e6:.0f} MB for {summary['saved']}")
    text = run_platform("images", "save", str(tmp_path / "again.tar"), timeout=600)
    assert text.returncode == 0 and f"missing: {K3S_IMAGE}" in text.stdout, text.stdout
    assert f"`docker pull {K3S_IMAGE}`" in text.stdout

    # A fresh engine has none of them; `platform up --images` loads the archive into it.
    assert not fresh_engine.docker("images", "-q").split()
    result = run_platform(
        "up", "--name", "bundle", "--images", str(archive), "--only", "cluster",
        env=_k3d_env(fresh_engine.host), timeout=600,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    output = result.stdout + result.stderr  # progress on stdout, the error on stderr
    assert "loaded 2 images into Docker" in output, output
    for reference in (COMPONENT_IMAGE, base_image):
        here = json.loads(docker("image", "inspect", reference))[0]["Id"]
        there = json.loads(fresh_engine.docker("image", "inspect", reference))[0]["Id"]
        assert here == there, reference
    # Nothing was pulled: the fresh engine's daemon log has no pull of the bundle's images.
    log = (fresh_engine.root / "dockerd.log").read_text(errors="replace")
    pulls = [line for line in log.splitlines() if "pull" in line.lower()]
    assert not [line for line in pulls if "platform-components" in line or base_image in line]
    # The generated k3d config mounts the bundle into k3s's airgap images directory ...
    config = yaml.safe_load((Path(os.environ["PLATFORM_HOME"]) / "bundle" / "k3d.yaml").read_text())
    assert config["volumes"] == [
        {
            "volume": f"{archive}:/var/lib/rancher/k3s/agent/images/platform-images.tar:ro",
            "nodeFilters": ["server:*", "agent:*"],
        }
    ]
    # ... and k3d, run for real against the fresh engine, stops only at the node image.
    _assert_says_how_to_provide_k3s(output)
    _assert_no_k3d_leftovers("bundle", fresh_engine.host)


def test_offline_up_warns_at_preflight_and_stops_at_the_cluster_naming_the_bundle(
    component_image: ComponentImage, base_image: str, docker_engine: DockerEngine
) -> None:
    """Unreachable registries do not stop preflight (the tools stage still gets what it
    can); preflight names the missing images and the bundle, and the cluster stage stops
    at the first image k3d cannot pull, with the same fix."""
    # The local base, should the code have changed since the image was built (then the
    # tools stage rebuilds it: the default base cannot be pulled here).
    env = {**_k3d_env(), "PLATFORM_IMAGE_BASE": base_image}
    result = run_platform("up", "--name", "offline", env=env, timeout=900)
    assert result.returncode == 1, result.stdout + result.stderr
    output = result.stdout + result.stderr  # progress on stdout, the error on stderr
    assert "[preflight] warning: " in output, output
    assert f"pinned images are not local ({K3S_IMAGE}" in output, output
    assert "cannot be reached" in output
    assert "offline: load the bundle with `platform up --images FILE`" in output
    assert f"online: `docker pull {K3S_IMAGE}`" in output
    assert "[tools] done" in output and "[cluster] failed" in output, output
    _assert_says_how_to_provide_k3s(output)
    _assert_no_k3d_leftovers("offline")


def test_k3d_runs_until_it_needs_the_k3s_image_and_says_how_to_provide_it(
    component_image: ComponentImage, docker_engine: DockerEngine
) -> None:
    result = run_platform(
        "up", "--name", "k3dpath", "--only", "cluster", env=_k3d_env(), timeout=600
    )
    assert result.returncode == 1, result.stdout + result.stderr
    output = result.stdout + result.stderr  # progress on stdout, the error on stderr
    assert "[cluster] creating k3d cluster platform-k3dpath" in output, output
    _assert_says_how_to_provide_k3s(output)
    # The registry's own answer is part of the cause (here: no DNS for the registry).
    assert "registry-1.docker.io" in output
    _assert_no_k3d_leftovers("k3dpath")
    config = yaml.safe_load(
        (Path(os.environ["PLATFORM_HOME"]) / "k3dpath" / "k3d.yaml").read_text()
    )
    assert config["image"] == K3S_IMAGE and "volumes" not in config


def test_k3d_image_import_command_line_is_accepted_by_k3d(
    component_image: ComponentImage,
    docker_engine: DockerEngine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`k3d image import --mode direct --cluster NAME IMAGE`: k3d accepts the flags and
    gets as far as looking the cluster up (there is none: no k3s image here)."""
    from bootstrap.config import load_settings
    from bootstrap.engines.k3d import K3dEngine
    from bootstrap.state import PlatformState
    from stacks.errors import PermanentError

    k3d = require_binary("k3d")
    monkeypatch.setenv("PATH", f"{k3d.parent}{os.pathsep}{os.environ['PATH']}")
    settings = load_settings(flags={"name": "importer"}, environ={"PLATFORM_HOME": str(tmp_path)})
    engine = K3dEngine(settings, PlatformState(tmp_path, "importer"))
    steps: list[str] = []

    def step(message: str) -> None:
        steps.append(message)

    with pytest.raises(PermanentError) as failure:
        engine.import_images(step)
    assert steps == [f"importing {COMPONENT_IMAGE} into k3d cluster platform-importer"]
    message = str(failure.value)
    assert "k3d image import" in message and "platform-importer" in message, message
    assert "unknown flag" not in message and "invalid argument" not in message, message


def test_a_missing_component_image_is_named_before_k3d_runs(
    docker_engine: DockerEngine, tmp_path: Path
) -> None:
    from bootstrap.config import load_settings
    from bootstrap.engines.k3d import K3dEngine
    from bootstrap.state import PlatformState
    from stacks.errors import PermanentError

    settings = load_settings(flags={"name": "noimage"}, environ={"PLATFORM_HOME": str(tmp_path)})
    engine = K3dEngine(settings, PlatformState(tmp_path, "noimage"))
    with pytest.raises(PermanentError) as failure:
        engine.import_images(lambda _: None, ("platform-components:does-not-exist",))
    assert "is not in the local Docker engine" in str(failure.value)
    assert "platform image build" in failure.value.hint
