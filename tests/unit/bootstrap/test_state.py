"""State directory: atomic writes, secret file modes, the lock and its holder's pid."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from bootstrap.state import PlatformBusy, PlatformState, list_platforms


def test_state_round_trip_and_stage_records(tmp_path: Path) -> None:
    state = PlatformState(tmp_path, "ws1")
    assert not state.exists()
    state.update_stage("cluster", outcome="done", seconds=1.5)
    state.set_output("git_url", "http://git.localdev.me")
    again = PlatformState(tmp_path, "ws1").load()
    assert again["stages"]["cluster"] == {"outcome": "done", "seconds": 1.5}
    assert again["outputs"]["git_url"] == "http://git.localdev.me"
    assert [p.name for p in list_platforms(tmp_path)] == ["ws1"]
    leftovers = [p.name for p in state.root.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_secret_files_are_0600_and_the_directory_0700(tmp_path: Path) -> None:
    state = PlatformState(tmp_path, "local")
    path = state.write_secret("vault-init.json", '{"root_token": "x"}')
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(state.secrets_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(state.write_kubeconfig("apiVersion: v1").stat().st_mode) == 0o600


def test_the_state_directory_is_private_even_when_made_before(tmp_path: Path) -> None:
    """It holds the Terraform state and plans (the secret variables), logs, the kubeconfig."""
    (tmp_path / "local" / "logs").mkdir(parents=True, mode=0o755)
    (tmp_path / "local").chmod(0o755)
    state = PlatformState(tmp_path, "local")
    state.update_stage("preflight", outcome="done")
    for directory in (state.root, state.secrets_dir, state.logs_dir):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory


def test_corrupt_state_is_a_clear_error(tmp_path: Path) -> None:
    state = PlatformState(tmp_path, "local")
    state.ensure()
    state.state_file.write_text("{not json")
    with pytest.raises(Exception, match="not valid JSON") as caught:
        state.load()
    assert "platform up" in getattr(caught.value, "hint", "")


def test_second_holder_is_refused_with_the_first_pid(tmp_path: Path) -> None:
    """A real second process holds the lock; we are refused and told its pid."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from bootstrap.state import PlatformState;"
            "s = PlatformState(Path(sys.argv[1]), 'local');\n"
            "with s.lock('up'):\n print('locked', flush=True); time.sleep(30)",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        state = PlatformState(tmp_path, "local")
        with pytest.raises(PlatformBusy) as caught, state.lock("up"):
            pass
        assert caught.value.pid == holder.pid
        assert f"pid {holder.pid}" in str(caught.value)
    finally:
        holder.kill()
        holder.wait()
    # The holder died without releasing anything by hand: the lock is free again.
    with PlatformState(tmp_path, "local").lock("up"):
        assert (tmp_path / "local" / "lock").read_text().startswith(str(os.getpid()))


def test_state_json_is_never_torn(tmp_path: Path) -> None:
    state = PlatformState(tmp_path, "local")
    for i in range(50):
        state.update_stage("s", outcome="done", n=i)
    assert json.loads(state.state_file.read_text())["stages"]["s"]["n"] == 49
    assert [p.name for p in state.root.iterdir() if p.name.startswith(".state.json.")] == []
