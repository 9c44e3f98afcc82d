"""The `terraform` stage survives the worst moment, with the real tofu, Vault provider,
OpenBao and kube-apiserver: tofu killed in the middle of an apply (its provider dies
too, the error says so, the next run converges), a state emptied with a stale lock and a
plan file left beside it (recovered, the objects already in Vault adopted), and every
file holding the secret variables private, with no plan file left after a run."""

from __future__ import annotations

import os
import signal
import stat
import threading
import time
from pathlib import Path

import pytest

from bootstrap.stages import tfstate
from bootstrap.stages.base import StageContext
from bootstrap.stages.terraform import PLAN_FILE, TerraformStage
from bootstrap.stages.vault import VaultStage
from stacks.errors import PermanentError, TransientError
from tests.integration.vault.tofu_processes import alive, applying_with_provider, in_workdir
from tests.support.kwok import KwokCluster
from tests.support.openbao import OpenBaoServer
from tests.support.stages import MakeContext

pytestmark = pytest.mark.integration


def _modes(root: Path) -> dict[str, int]:
    """Mode of every file and directory under the state dir that is not a symlink."""
    modes = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        if not path.is_symlink() and ".terraform/providers" not in str(path):
            modes[str(path.relative_to(root))] = stat.S_IMODE(path.stat().st_mode)
    return modes


def _converge(stage: TerraformStage, ctx: StageContext) -> str:
    """Run the stage as the runner does: again after a transient error (a KV mount made a
    moment ago upgrades itself and refuses writes for a second)."""
    for _ in range(5):
        try:
            return stage.run(ctx)
        except TransientError:
            time.sleep(1)
    return stage.run(ctx)


def _assert_private(ctx: StageContext) -> None:
    workdir = TerraformStage().workdir(ctx)
    for name, mode in _modes(ctx.state.root).items():
        is_dir = (ctx.state.root / name).is_dir()
        if is_dir:
            assert mode == 0o700, f"directory {name} is {mode:o}"
        elif name.startswith("terraform/") or name.startswith("secrets/"):
            assert mode == 0o600, f"{name} is {mode:o}"
    assert not (workdir / PLAN_FILE).exists(), "a plan file (secret variables) was left"
    assert not (workdir / tfstate.LOCK_INFO).exists()


def test_tofu_killed_mid_apply_says_so_and_the_next_run_converges(
    vault: OpenBaoServer, cluster: KwokCluster, make_context: MakeContext, tofu_env: Path
) -> None:
    ctx = make_context(vault.address, kubeconfig=cluster.kubeconfig, name="tf-kill")
    VaultStage().run(ctx)
    stage = TerraformStage()
    workdir = stage.workdir(ctx)
    outcome: dict[str, BaseException | str] = {}

    def run() -> None:
        try:
            outcome["summary"] = stage.run(ctx)
        except BaseException as error:
            outcome["error"] = error

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    found = None
    deadline = time.monotonic() + 120
    while found is None and worker.is_alive() and time.monotonic() < deadline:
        found = applying_with_provider(workdir)
        time.sleep(0.01)
    assert found is not None, f"never saw tofu apply with its provider: {outcome}"
    tofu, provider = found
    os.kill(tofu.pid, signal.SIGKILL)
    worker.join(timeout=60)

    error = outcome.get("error")
    assert isinstance(error, PermanentError), outcome
    assert str(error) == "`tofu apply` was killed by SIGKILL before it finished"
    assert "Creating" not in str(error)
    time.sleep(0.5)
    assert not alive(provider.pid), "the provider plugin outlived the killed tofu"
    assert in_workdir(workdir) == []
    state = workdir / tfstate.STATE
    print(f"\nleft by the kill: state {state.stat().st_size if state.exists() else 'none'} bytes")

    summary = _converge(stage, ctx)
    assert summary.startswith("Vault configured:") or summary.endswith("no changes")
    assert stage.check(ctx).done
    assert stage.run(ctx) == "Vault configuration: no changes"
    _assert_private(ctx)


def test_an_emptied_state_with_a_stale_lock_and_plan_is_recovered(
    vault: OpenBaoServer, cluster: KwokCluster, make_context: MakeContext, tofu_env: Path
) -> None:
    """What the issue's kill -9 left (before tofu died with its parent): a 0-byte state,
    its lock info, a plan file, no backup, and Vault configured without a record of it."""
    ctx = make_context(vault.address, kubeconfig=cluster.kubeconfig, name="tf-empty")
    VaultStage().run(ctx)
    stage = TerraformStage()
    assert _converge(stage, ctx).startswith("Vault configured:")
    workdir = stage.workdir(ctx)
    (workdir / tfstate.STATE).write_bytes(b"")
    (workdir / tfstate.TOFU_BACKUP).unlink(missing_ok=True)
    (workdir / tfstate.OUR_BACKUP).unlink(missing_ok=True)
    (workdir / tfstate.LOCK_INFO).write_text('{"ID": "stale", "Operation": "OperationTypeApply"}')
    (workdir / PLAN_FILE).write_bytes(b"PK stale plan")

    summary = _converge(stage, ctx)
    assert summary.startswith("Vault configured:") or summary.endswith("no changes"), summary
    assert {"vault_mount.kv", "vault_auth_backend.kubernetes"} <= tfstate.managed(workdir)
    assert stage.run(ctx) == "Vault configuration: no changes"
    _assert_private(ctx)


def test_state_files_are_private_from_the_first_run(
    vault: OpenBaoServer, cluster: KwokCluster, make_context: MakeContext, tofu_env: Path
) -> None:
    ctx = make_context(vault.address, kubeconfig=cluster.kubeconfig, name="tf-modes")
    VaultStage().run(ctx)
    _converge(TerraformStage(), ctx)
    workdir = TerraformStage().workdir(ctx)
    assert (workdir / tfstate.STATE).stat().st_size > 0
    assert stat.S_IMODE((workdir / tfstate.STATE).stat().st_mode) == 0o600
    _assert_private(ctx)
