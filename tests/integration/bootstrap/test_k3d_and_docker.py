"""The k3d engine and preflight against the real k3d binary and the real Docker engine."""

from __future__ import annotations

import os
import re
import socket
import subprocess
from pathlib import Path

import pytest

from bootstrap.config import load_settings
from bootstrap.engines.k3d import K3dEngine
from bootstrap.stages.preflight import blocking_failures, check_docker, check_ports
from bootstrap.state import PlatformState
from tests.support.binaries import require_binary
from tests.support.cli import run_platform
from tests.support.dockerd import DockerEngine

pytestmark = pytest.mark.integration


def test_generated_k3d_config_passes_k3ds_own_validation(tmp_path: Path) -> None:
    k3d = require_binary("k3d")
    settings = load_settings(
        flags={"name": "ws1"}, environ={"PLATFORM_K3D_AGENTS": "2", "PLATFORM_HOME": str(tmp_path)}
    )
    config = K3dEngine(settings, PlatformState(tmp_path, "ws1")).write_config()
    result = subprocess.run(
        [str(k3d), "config", "migrate", str(config), str(tmp_path / "out.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "k3d.io/v1alpha5#simple" in result.stdout + result.stderr
    # The same validation rejects a broken file, so the check above can fail.
    config.write_text(config.read_text().replace("servers: 1", "servers: one"))
    broken = subprocess.run(
        [str(k3d), "config", "migrate", str(config), str(tmp_path / "bad.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert broken.returncode != 0 and "Schema Validation failed" in broken.stdout + broken.stderr


def test_preflight_passes_with_a_running_docker_engine(
    docker_engine: DockerEngine, tmp_path: Path
) -> None:
    findings = check_docker(load_settings(environ={"PLATFORM_HOME": str(tmp_path)}))
    assert findings[0].ok, findings[0].detail
    assert findings[0].detail.startswith("Docker ")


def test_preflight_fails_with_a_hint_when_docker_is_not_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/docker.sock")  # no daemon there
    findings = check_docker(load_settings(environ={"PLATFORM_HOME": str(tmp_path)}))
    assert not findings[0].ok
    assert "not running" in findings[0].detail and "start Docker" in findings[0].fix


def test_a_held_port_is_named_with_its_process(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        settings = load_settings(
            environ={"PLATFORM_K3D_API_PORT": str(port), "PLATFORM_HOME": str(tmp_path)}
        )
        failed = blocking_failures(check_ports(settings, cluster_exists=False))
        assert len(failed) == 1
        assert re.search(rf"held by \S+ \(pid {os.getpid()}\)", failed[0].detail), failed[0].detail
        assert "PLATFORM_K3D_API_PORT" in failed[0].fix


def test_up_stops_at_preflight_naming_the_port_holder(
    docker_engine: DockerEngine, tmp_path: Path
) -> None:
    k3d = require_binary("k3d")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = {
            "PATH": f"{k3d.parent}{os.pathsep}{os.environ['PATH']}",
            "PLATFORM_K3D_HTTPS_PORT": str(port),
        }
        result = run_platform("up", "--name", "porttest", env=env)
    assert result.returncode == 1
    assert re.search(rf"HTTPS port {port} is held by \S+ \(pid {os.getpid()}\)", result.stderr), (
        result.stderr
    )
    assert "To fix:" in result.stderr and "PLATFORM_K3D_HTTPS_PORT" in result.stderr
