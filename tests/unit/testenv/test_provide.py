"""testenv's failure path: no cache, no download, no Go -> which binary, and how to provide it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
