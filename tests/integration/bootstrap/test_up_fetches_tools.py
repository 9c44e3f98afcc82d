"""`platform up` on a machine with no tofu and no component image gets them itself: the
`tools` stage downloads OpenTofu (from a local stand-in for its release, serving the real
binary testenv built) and builds the component image, and the rest of the platform is
installed with them (the terraform stage runs the downloaded tofu). A second `up`
neither downloads nor builds again.

Runs against the real test cluster with `--engine existing` and `image.build: yes` (a
cluster on this machine's Docker), the image built on the base made here from Debian
packages (the default base cannot be pulled here). The `--dry-run` plan names the
downloads and the build, k3d's too for the default engine.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bootstrap.images import COMPONENT_IMAGE
from tests.support.cli import json_events, run_platform
from tests.support.componentimage import docker, renderers_env
from tests.support.dockerd import DockerEngine
from tests.support.hostplatform import HostPlatform
from tests.support.releases import ReleaseServer, release_files, serve_releases

pytestmark = pytest.mark.integration


@pytest.fixture
def releases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReleaseServer]:
    with serve_releases(release_files(tmp_path_factory.mktemp("releases"))) as server:
        yield server


def image_id(reference: str) -> str | None:
    result = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", reference],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() if result.returncode == 0 else None


@pytest.fixture
def no_component_image(docker_engine: DockerEngine) -> None:
    """No component image in Docker (untagged: the dependency layers stay cached)."""
    if image_id(COMPONENT_IMAGE) is not None:
        docker("rmi", COMPONENT_IMAGE)


def test_up_downloads_tofu_and_builds_the_image_once(
    platform_env: HostPlatform,
    base_image: str,
    no_component_image: None,
    releases: ReleaseServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PLATFORM_TERRAFORM_BIN")  # no tofu given: the stage gets it
    empty = tmp_path / "no-tools"
    empty.mkdir()
    env = {
        **releases.env(),
        "PATH": os.pathsep.join([str(empty), "/usr/bin", "/bin"]),  # no tofu, terraform, k3d
        "PLATFORM_IMAGE_BUILD": "yes",
        "PLATFORM_IMAGE_BASE": base_image,
        **renderers_env(),  # the same image as the component_image fixture builds
    }
    tofu = Path(os.environ["PLATFORM_HOME"]) / "bin" / "tofu"

    plan = run_platform("up", "--dry-run", "-o", "json", env=env)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    rows = {r["stage"]: r for r in json_events(plan.stdout)[-1]["plan"]}
    assert rows["tools"]["changes"][0] == f"download OpenTofu 1.6.2 into {tofu.parent}"
    assert rows["tools"]["changes"][1].startswith(
        f"build the component image {COMPONENT_IMAGE} on {base_image} ({COMPONENT_IMAGE} is not in Docker"
    )
    k3d_plan = run_platform(
        "up", "--name", "k3dplan", "--engine", "k3d", "--dry-run", "-o", "json", env=env
    )
    k3d_rows = {r["stage"]: r for r in json_events(k3d_plan.stdout)[-1]["plan"]}
    assert f"download k3d v5.9.0 into {tofu.parent}" in k3d_rows["tools"]["changes"]
    assert releases.requests == [] and not tofu.exists()  # a dry run changes nothing

    first = run_platform("up", "-o", "json", env=env, timeout=1200)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr
    stages = {s["stage"]: s for s in json_events(first.stdout)[-1]["stages"]}
    assert list(stages)[:3] == ["preflight", "tools", "cluster"]
    assert stages["tools"]["outcome"] == "done" and stages["terraform"]["outcome"] == "done"
    assert releases.requests == ["tofu_1.6.2_linux_amd64.zip"]
    assert os.access(tofu, os.X_OK)
    version = subprocess.run([tofu, "version"], capture_output=True, text=True, check=True)
    assert "OpenTofu v1.6.2" in version.stdout
    built = image_id(COMPONENT_IMAGE)
    assert built is not None
    labels = json.loads(
        docker("image", "inspect", "--format", "{{json .Config.Labels}}", COMPONENT_IMAGE)
    )
    assert labels["io.platform.version"] and labels["io.platform.source"]
    # The terraform stage ran tofu: with none on PATH, the one the tools stage installed.
    steps = [(e.get("stage"), e.get("message")) for e in json_events(first.stdout)]
    assert ("terraform", "tofu apply (4 to add, 0 to change, 0 to destroy)") in steps or (
        "terraform",
        "tofu init",
    ) in steps

    second = run_platform("up", "-o", "json", env=env, timeout=600)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr
    outcomes = {s["stage"]: s["outcome"] for s in json_events(second.stdout)[-1]["stages"]}
    assert set(outcomes.values()) == {"verified"}, outcomes
    assert releases.requests == ["tofu_1.6.2_linux_amd64.zip"]  # not downloaded again
    assert image_id(COMPONENT_IMAGE) == built  # not built again


def test_a_base_that_cannot_be_pulled_is_one_sentence_naming_base_and_the_bundle(
    docker_engine: DockerEngine,
) -> None:
    base = "registry.invalid/platform/no-such-base:1"
    result = run_platform("image", "build", "--base", base, "--tag", "platform-test-nobase:1")
    assert result.returncode == 1
    text = " ".join(result.stderr.split())
    assert (
        f"The component image is built on {base}, which is not in Docker and could not be pulled"
        in text
    ), text
    assert "with `--base IMAGE`" in text and "`platform up --images FILE`" in text
    assert "Traceback" not in text and image_id("platform-test-nobase:1") is None
