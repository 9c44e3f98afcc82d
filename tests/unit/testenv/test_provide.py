"""testenv: its failure path (which binary, how to provide it) and the go.mod edits it derives."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import testenv.provide as provide
from testenv.catalog import all_tools, override_variable, tool_for_binary


def test_missing_everything_names_the_binary_and_its_variable(tmp_path: Path) -> None:
    env = {
        "PATH": str(tmp_path / "empty-bin"),  # no go, no network tools
        "HOME": str(tmp_path),
        "PLATFORM_TESTENV_CACHE": str(tmp_path / "cache"),
        "PLATFORM_TESTENV_NO_DOWNLOAD": "1",
    }
    result = subprocess.run(
        [sys.executable, "-m", "testenv", "etcd", "kwok"],
        cwd=Path(__file__).parents[3],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "etcd" in result.stdout and "MISSING" in result.stdout
    assert "could not get etcd (etcd v3.6.13)" in result.stderr
    assert "PLATFORM_TESTENV_ETCD=/path/to/etcd" in result.stderr
    assert "PLATFORM_TESTENV_KWOK=/path/to/kwok" in result.stderr


def test_override_variable_wins_and_is_checked(tmp_path: Path) -> None:
    fake_etcd = tmp_path / "etcd"
    fake_etcd.write_text("#!/bin/sh\necho etcd\n")
    fake_etcd.chmod(0o755)
    os.environ[override_variable("etcd")] = str(fake_etcd)
    try:
        result = provide.provide(tool_for_binary("etcd"))
        assert result.source == "override" and result.paths["etcd"] == fake_etcd
        assert provide.locate("etcd") == fake_etcd
        fake_etcd.chmod(0o644)
        assert provide.locate("etcd") is None
    finally:
        del os.environ[override_variable("etcd")]


def test_every_binary_has_one_tool_and_staging_modules_are_derived() -> None:
    names = [b for tool in all_tools() for b in tool.binaries]
    assert len(names) == len(set(names))
    gomod = "replace (\n\tk8s.io/api => ./staging/src/k8s.io/api\n\tk8s.io/client-go => ./staging/src/k8s.io/client-go\n)\n"
    assert provide._staging_modules(gomod) == ["k8s.io/api", "k8s.io/client-go"]


def test_upstream_replaces_and_excludes_are_copied_into_the_wrapper() -> None:
    gomod = (
        "module github.com/traefik/traefik/v3\n"
        "require github.com/gorilla/mux v1.8.1\n"
        "// Containous forks\n"
        "replace (\n"
        "\tgithub.com/gorilla/mux => github.com/containous/mux v0.0.0-2025 // a fork\n"
        "\tgithub.com/old/pinned v1.0.0 => github.com/new/pinned v1.0.1\n"
        ")\n"
        "replace example.com/one => example.com/two v2.0.0\n"
        "exclude github.com/tencentcloud/tencentcloud-sdk-go v3.0.83+incompatible\n"
    )
    assert provide._upstream_edits(gomod) == [
        "-replace=github.com/gorilla/mux=github.com/containous/mux@v0.0.0-2025",
        "-replace=github.com/old/pinned@v1.0.0=github.com/new/pinned@v1.0.1",
        "-replace=example.com/one=example.com/two@v2.0.0",
        "-exclude=github.com/tencentcloud/tencentcloud-sdk-go@v3.0.83+incompatible",
    ]


def test_a_replace_onto_an_upstream_directory_stops_the_build_by_name() -> None:
    gomod = "replace github.com/traefik/traefik/dynamic/ext => ./pkg/config/dynamic/ext\n"
    with pytest.raises(provide.MissingBinary, match="dynamic/ext is replaced by the directory"):
        provide._upstream_edits(gomod)


def test_the_platform_deploys_the_openbao_version_the_tests_run() -> None:
    # bootstrap/images.py pins the image the manifests name; testenv gets the `bao` every
    # test runs, and the real-node tests make that image from it: one version.
    from bootstrap.images import OPENBAO_IMAGE, OPENBAO_VERSION
    from testenv.catalog import OPENBAO_VERSION as TESTED

    assert OPENBAO_VERSION == TESTED
    assert OPENBAO_IMAGE.endswith(f":{TESTED}")
