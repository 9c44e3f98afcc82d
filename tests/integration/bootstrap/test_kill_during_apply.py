"""kill -9 of `platform up` in the middle of `tofu apply`, with every stage real: tofu
and its provider plugin die with the bootstrap, no lock or plan file stays behind, and
the next `platform up` converges (it used to fail for good with a JSONDecodeError)."""

from __future__ import annotations

import os
import signal
import stat
import time
from pathlib import Path

import pytest

from bootstrap.state import PlatformState
from tests.integration.vault.tofu_processes import alive, applying_with_provider, in_workdir
from tests.support import processes
from tests.support.cli import json_events, run_platform, start_platform
from tests.support.hostplatform import HostPlatform

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("platform_env")]


def test_kill_9_of_up_during_tofu_apply_then_up_converges(
    platform_env: HostPlatform, tmp_path: Path
) -> None:
    state = PlatformState(Path(os.environ["PLATFORM_HOME"]), "local")
    workdir = state.root / "terraform" / "vault"
    victim = start_platform("up", "-o", "json", log=tmp_path / "victim.log")
    try:
        found = None
        deadline = time.monotonic() + 240
        while found is None and victim.poll() is None and time.monotonic() < deadline:
            found = applying_with_provider(workdir) if workdir.is_dir() else None
            time.sleep(0.01)
        assert found is not None, (tmp_path / "victim.log").read_text()[-3000:]
        tofu, provider = found
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=10)
    finally:
        processes.stop(victim)
    processes.wait_for(
        lambda: not alive(tofu.pid) and not alive(provider.pid),
        timeout=20,
        what="tofu and its provider to die with the killed `platform up`",
    )
    assert in_workdir(workdir) == []
    assert state.load()["stages"]["terraform"]["outcome"] == "running"  # what kill -9 leaves
    assert stat.S_IMODE(state.root.stat().st_mode) == 0o700

    resumed = run_platform("up", "-o", "json")
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-2000:]
    assert "JSONDecodeError" not in resumed.stdout + resumed.stderr
    outcomes = {s["stage"]: s["outcome"] for s in json_events(resumed.stdout)[-1]["stages"]}
    assert outcomes["terraform"] == "done"
    assert not (workdir / "platform.tfplan").exists()
    assert not (workdir / ".terraform.tfstate.lock.info").exists()
    assert stat.S_IMODE((workdir / "terraform.tfstate").stat().st_mode) == 0o600
