"""kill -9 of `platform up` at six points (inside stages and at a stage boundary), each
followed by `platform up`: it converges every time, nothing is duplicated, and Vault's
keys are never lost."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from bootstrap.state import PlatformState
from tests.support import processes
from tests.support.cli import json_events, run_platform, start_platform
from tests.support.hostplatform import HostPlatform

pytestmark = pytest.mark.e2e

# (stage, outcome that triggers the kill): "running" is inside the stage, "done" is the
# moment after it was recorded and before the next one starts.
KILL_POINTS = (
    ("vault", "running"),
    ("vault", "done"),
    ("terraform", "running"),
    ("reconciler", "running"),
    ("secrets", "running"),
    ("certs", "running"),
)


def test_kill_9_anywhere_then_up_converges(host_platform: HostPlatform, tmp_path: Path) -> None:
    state = PlatformState(Path(os.environ["PLATFORM_HOME"]), "local")
    root_token = ""
    for index, (stage, outcome) in enumerate(KILL_POINTS):
        victim = start_platform("up", log=tmp_path / f"up-{index}.log")
        processes.wait_for(
            lambda stage=stage, outcome=outcome: (
                state.exists()  # type: ignore[misc]
                and state.load()["stages"].get(stage, {}).get("outcome") == outcome
            ),
            timeout=180,
            what=f"stage {stage} to be {outcome}",
            interval=0.02,
        )
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=10)
        assert json.loads(state.state_file.read_text())  # never torn
        keys = state.read_secret("vault-init.json")
        if keys:
            token = json.loads(keys)["root_token"]
            root_token = root_token or token
            assert token == root_token, "Vault was initialised twice: the first keys were lost"

    final = run_platform("up", "-o", "json")
    assert final.returncode == 0, final.stdout[-3000:]
    outcomes = {s["stage"]: s["outcome"] for s in json_events(final.stdout)[-1]["stages"]}
    assert set(outcomes.values()) <= {"done", "verified"}
    assert json.loads(state.read_secret("vault-init.json") or "{}")["root_token"] == root_token

    # Nothing duplicated: one seed commit in the repository, one of each Application.
    work = tmp_path / "clone"
    host_platform.git.git("clone", "-q", host_platform.git.repo_url("gitops"), str(work))
    authors = host_platform.git.git("log", "--format=%an", cwd=work).stdout.split("\n")
    assert authors.count("platform bootstrap") == 1
    apps = json_events(run_platform("apps", "-o", "json").stdout)[-1]["applications"]
    names = [a["name"] for a in apps]
    assert len(names) == len(set(names)) and "root" in names
