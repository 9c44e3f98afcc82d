"""The pinned tools arrive by themselves, verified: k3d and OpenTofu downloaded from a
local stand-in for their releases (tests/support/releases.py: the real binaries testenv
built, served on 127.0.0.1), through the real CLI.

A file whose SHA-256 is not the pinned one is refused and leaves nothing; a download the
server cuts short leaves nothing and the next run downloads again.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import json_events, run_platform
from tests.support.releases import ReleaseServer, release_files, serve_releases

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return release_files(tmp_path_factory.mktemp("releases"))


@pytest.fixture
def releases(files: dict[str, Path]) -> Iterator[ReleaseServer]:
    with serve_releases(files) as server:
        yield server


@pytest.fixture
def bare_path(tmp_path: Path) -> str:
    """A PATH with git and python but no k3d, tofu or terraform (/usr/local/bin has one)."""
    empty = tmp_path / "no-tools"
    empty.mkdir()
    return os.pathsep.join([str(empty), "/usr/bin", "/bin"])


def bin_dir() -> Path:
    return Path(os.environ["PLATFORM_HOME"]) / "bin"


def test_doctor_install_downloads_k3d_and_tofu_verified_and_executable(
    releases: ReleaseServer, bare_path: str
) -> None:
    before = run_platform("doctor", "-o", "json", env={"PATH": bare_path, **releases.env()})
    checks = {c["name"]: c for c in json_events(before.stdout)[-1]["checks"]}
    assert checks["k3d"]["planned"] and "will download k3d v5.9.0" in checks["k3d"]["detail"]
    assert checks["tofu"]["planned"] and "will download OpenTofu 1.6.2" in checks["tofu"]["detail"]
    assert not checks["k3d"]["blocking"]
    assert releases.requests == []  # doctor alone downloads nothing

    result = run_platform("doctor", "--install", env={"PATH": bare_path, **releases.env()})
    output = result.stdout + result.stderr
    assert "Installed k3d v5.9.0 at" in output and "(SHA-256 verified)" in output, output
    assert "Installed tofu 1.6.2 at" in output, output
    k3d, tofu = bin_dir() / "k3d", bin_dir() / "tofu"
    assert os.access(k3d, os.X_OK) and os.access(tofu, os.X_OK)
    assert k3d.read_bytes() == releases.files["k3d"].read_bytes()
    version = subprocess.run([k3d, "version"], capture_output=True, text=True, check=True)
    assert "k3d version v5.9.0" in version.stdout
    tofu_version = subprocess.run([tofu, "version"], capture_output=True, text=True, check=True)
    assert "OpenTofu v1.6.2" in tofu_version.stdout
    assert sorted(p.name for p in bin_dir().iterdir()) == ["k3d", "tofu"]  # no partial files
    # Now found: doctor plans nothing more.
    after = run_platform("doctor", "-o", "json", env={"PATH": bare_path, **releases.env()})
    assert "will download" not in after.stdout


def test_a_checksum_mismatch_is_refused_and_leaves_nothing(
    releases: ReleaseServer, bare_path: str
) -> None:
    wrong = "0" * 64
    result = run_platform("doctor", "--install", env={"PATH": bare_path, **releases.env(k3d=wrong)})
    assert result.returncode == 1
    assert "has SHA-256 " + releases.sums["k3d"] in result.stderr, result.stderr
    assert f"not the pinned {wrong}: refused, nothing was installed" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (bin_dir() / "k3d").exists()
    assert [p.name for p in bin_dir().iterdir()] == []  # not even the partial file


def test_a_download_cut_short_leaves_nothing_and_the_next_run_retries(
    releases: ReleaseServer, bare_path: str
) -> None:
    releases.truncate = True
    first = run_platform("doctor", "--install", env={"PATH": bare_path, **releases.env()})
    assert first.returncode == 1
    assert "was cut short" in first.stderr and "nothing was installed" in first.stderr, first.stderr
    assert "Run `platform up` again to retry the download" in first.stderr
    assert list(bin_dir().iterdir()) == []

    releases.truncate = False
    second = run_platform("doctor", "--install", env={"PATH": bare_path, **releases.env()})
    assert "Installed k3d v5.9.0" in second.stdout + second.stderr
    assert (bin_dir() / "k3d").read_bytes() == releases.files["k3d"].read_bytes()
    assert releases.requests.count("k3d-linux-amd64") == 2


def test_offline_the_error_names_the_file_and_where_to_put_it(bare_path: str) -> None:
    offline = '{"base_url": "http://127.0.0.1:9"}'  # discard port: refused at once
    result = run_platform(
        "doctor", "--install", env={"PATH": bare_path, "PLATFORM_TEST_DOWNLOADS": offline}
    )
    assert result.returncode == 1
    text = " ".join(result.stderr.split())
    assert "Could not download k3d v5.9.0 from http://127.0.0.1:9/k3d-linux-amd64" in text, text
    assert (
        "download k3d-linux-amd64 (https://github.com/k3d-io/k3d/releases/download/v5.9.0/"
        "k3d-linux-amd64, SHA-256 06d8f25bc3a971c4eb29e0ff08429b180402db0f4dec838c9eac427e296800a0)"
        in text
    )
    assert f"put it at {bin_dir() / 'k3d'} (chmod +x)" in text


def test_partial_files_a_killed_run_left_are_removed_by_the_next_install(
    releases: ReleaseServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bootstrap.tools import K3D, install

    bin_dir().mkdir(parents=True)
    left = bin_dir() / ".k3d.abc123.partial"  # a kill -9 during an earlier download
    left.write_bytes(b"half a k3d")
    os.utime(left, (1_000_000_000, 1_000_000_000))
    running = bin_dir() / ".k3d.def456.partial"  # another platform's download, under way
    running.write_bytes(b"a quarter")
    for key, value in releases.env().items():
        monkeypatch.setenv(key, value)
    assert install(K3D) == bin_dir() / "k3d"
    assert not left.exists() and running.exists()
