"""Recovery of what a killed tofu leaves in the `terraform` stage's directory: an empty
state (restored from the newest readable copy, or removed), a lock no process holds
(removed) or one a live process holds (named, with the fix), a plan file (removed); and
the modes of files that hold the secret variables."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from bootstrap.stages import tfstate
from bootstrap.stages.tofu import failure
from stacks.errors import PermanentError


def _state(serial: int, *addresses: str) -> bytes:
    resources = []
    for address in addresses:
        kind, name = address.split(".")
        resources.append({"mode": "managed", "type": kind, "name": name, "instances": [{}]})
    return json.dumps({"version": 4, "serial": serial, "resources": resources}).encode()


def test_an_empty_state_is_restored_from_the_newest_copy(tmp_path: Path) -> None:
    (tmp_path / tfstate.STATE).write_bytes(b"")
    (tmp_path / tfstate.TOFU_BACKUP).write_bytes(_state(3, "vault_mount.kv"))
    (tmp_path / tfstate.OUR_BACKUP).write_bytes(_state(5, "vault_mount.kv", "vault_policy.p"))
    notes = tfstate.recover(tmp_path)
    assert tfstate.managed(tmp_path) == {"vault_mount.kv", "vault_policy.p"}
    assert "was empty or unreadable" in notes[0] and tfstate.OUR_BACKUP in notes[0]
    assert stat.S_IMODE((tmp_path / tfstate.STATE).stat().st_mode) == 0o600


def test_an_empty_state_without_a_copy_is_removed(tmp_path: Path) -> None:
    (tmp_path / tfstate.STATE).write_bytes(b"")
    (tmp_path / tfstate.TOFU_BACKUP).write_bytes(b"{truncated")
    notes = tfstate.recover(tmp_path, ("platform.tfplan",))
    assert not (tmp_path / tfstate.STATE).exists()
    assert tfstate.managed(tmp_path) == set()
    assert "no copy exists" in notes[0]


def test_a_good_state_is_left_alone_and_kept(tmp_path: Path) -> None:
    (tmp_path / tfstate.STATE).write_bytes(_state(7, "vault_mount.kv"))
    assert tfstate.recover(tmp_path) == []
    tfstate.keep(tmp_path)
    assert json.loads((tmp_path / tfstate.OUR_BACKUP).read_bytes())["serial"] == 7
    assert stat.S_IMODE((tmp_path / tfstate.OUR_BACKUP).stat().st_mode) == 0o600


def test_a_stale_lock_and_a_leftover_plan_are_removed(tmp_path: Path) -> None:
    (tmp_path / tfstate.STATE).write_bytes(_state(1))
    (tmp_path / tfstate.LOCK_INFO).write_text('{"ID": "x", "Who": "someone"}')
    (tmp_path / "platform.tfplan").write_bytes(b"PK")
    notes = tfstate.recover(tmp_path, ("platform.tfplan",))
    assert not (tmp_path / tfstate.LOCK_INFO).exists()
    assert not (tmp_path / "platform.tfplan").exists()
    assert any("stale lock" in n for n in notes) and any("plan file" in n for n in notes)


def test_a_lock_held_by_a_live_process_is_named_with_the_fix(tmp_path: Path) -> None:
    state = tmp_path / tfstate.STATE
    state.write_bytes(_state(1))
    (tmp_path / tfstate.LOCK_INFO).write_text("{}")
    # Another process (POSIX record locks are per process), working in the directory as
    # tofu does, holds the lock the way tofu does.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            f"fd = os.open({str(state)!r}, os.O_RDWR)\n"
            "fcntl.lockf(fd, fcntl.LOCK_EX)\n"
            "print('locked', flush=True)\n"
            "time.sleep(60)\n",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(PermanentError) as raised:
            tfstate.recover(tmp_path)
        assert f"is locked by pid {holder.pid}" in str(raised.value)
        assert f"kill {holder.pid}" in raised.value.hint
        assert (tmp_path / tfstate.LOCK_INFO).exists()
    finally:
        holder.kill()
        holder.wait()


def test_secure_makes_everything_private(tmp_path: Path) -> None:
    (tmp_path / ".terraform").mkdir(mode=0o755)
    for name in (tfstate.STATE, tfstate.TOFU_BACKUP, "platform.tfplan", ".terraform/x"):
        (tmp_path / name).write_text("{}")
        (tmp_path / name).chmod(0o644)
    tfstate.secure(tmp_path)
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / ".terraform").stat().st_mode) == 0o700
    for name in (tfstate.STATE, tfstate.TOFU_BACKUP, "platform.tfplan", ".terraform/x"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name


def test_a_tofu_killed_by_a_signal_is_said_so_without_its_progress_lines() -> None:
    progress = "vault_mount.kv: Creating...\nvault_policy.people: Creating..."
    error = failure("tofu", "apply", -9, progress, "")
    assert isinstance(error, PermanentError)
    assert str(error) == "`tofu apply` was killed by SIGKILL before it finished"
    assert "Creating" not in str(error) and "platform up` again" in error.hint
