"""Benchmark the `tools` stage: the first `platform up` fetches k3d and OpenTofu and builds
the component image; the second neither downloads nor builds.

    .venv/bin/python bench/tools_bench.py [--repeat 3]

Runs the real CLI (`platform up --only tools`, k3d engine) with an empty PLATFORM_HOME
and a PATH without k3d, tofu or terraform; the downloads come from a local stand-in for
the releases (tests/support/releases.py: testenv's real binaries on 127.0.0.1), the image
is built on the base made here from Debian packages (the default base cannot be pulled
here). The component image is untagged first, so the first run builds it (its dependency
layer stays cached, as on any machine that built once). Peer, measured in the same run:
`platform image build`, the build a second `up` would repeat without the image's version
and code labels. Prints the times and the ratio. Needs a Docker engine (dockerd).
Results go in bench/README.md, section "## Fetching tools and the image (`platform up`)".
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bootstrap.images import COMPONENT_IMAGE  # noqa: E402 - after the path is set
from tests.support.baseimage import TAG as BASE_TAG  # noqa: E402
from tests.support.baseimage import build_base_image  # noqa: E402
from tests.support.releases import release_files, serve_releases  # noqa: E402

PLATFORM = Path(sys.executable).parent / "platform"
DOCKER_HOST = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")


def image_id() -> str:
    result = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", COMPONENT_IMAGE],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip()


def timed(args: list[str], env: dict[str, str]) -> tuple[float, dict[str, object]]:
    started = time.monotonic()
    result = subprocess.run(
        [str(PLATFORM), *args, "-o", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
        check=False,
    )
    seconds = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(
            f"platform {' '.join(args)} failed:\n{result.stdout[-2000:]}{result.stderr}"
        )
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    return seconds, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="second runs and peer builds")
    args = parser.parse_args()
    build_base_image(DOCKER_HOST)
    with tempfile.TemporaryDirectory(prefix="tools-bench-") as work_dir:
        work = Path(work_dir)
        (work / "no-tools").mkdir()
        with serve_releases(release_files(work / "releases")) as releases:
            env = {
                **os.environ,
                **releases.env(),
                "PATH": os.pathsep.join([str(work / "no-tools"), "/usr/bin", "/bin"]),
                "PLATFORM_HOME": str(work / "home"),
                "PLATFORM_IMAGE_BASE": BASE_TAG,
                "NO_COLOR": "1",
            }
            if image_id():
                subprocess.run(["docker", "rmi", COMPONENT_IMAGE], check=True, capture_output=True)
            first, summary = timed(["up", "--only", "tools"], env)
            built = image_id()
            print(f"first up (download k3d + tofu, build the image): {first:.1f}s")
            print(f"  {summary['stages']}")
            seconds = []
            for _ in range(args.repeat):
                second, summary = timed(["up", "--only", "tools"], env)
                seconds.append(second)
                assert image_id() == built, "the second up rebuilt the image"
            assert len(releases.requests) == 2, releases.requests  # k3d and tofu, once each
            peer = []
            for _ in range(args.repeat):
                build, _ = timed(["image", "build", "--base", BASE_TAG], env)
                peer.append(build)
    again, rebuild = statistics.median(seconds), statistics.median(peer)
    print(f"second up (nothing to do), median of {args.repeat}: {again:.2f}s")
    print(f"peer: `platform image build` (cached layers), median of {args.repeat}: {rebuild:.1f}s")
    print(
        f"ratio second up / peer: {again / rebuild:.3f} (first up / second up: {first / again:.0f}x)"
    )


if __name__ == "__main__":
    main()
