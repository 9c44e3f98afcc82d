"""The `vault` stage and the unsealer against a real OpenBao with raft storage.

Init, unseal, idempotent re-run, sealing by restart (as Docker restarts and laptop sleep
do), the unsealer as a real `platform run unsealer` process, and the errors a person
sees when keys are wrong or missing.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
from pathlib import Path

import pytest

from bootstrap.stages.vault import VaultStage
from stacks.errors import PermanentError
from stacks.vault.api import UnsealFailed, VaultApi
from stacks.vault.keys import FILE_NAME
from tests.support import processes
from tests.support.cli import PLATFORM
from tests.support.components import launch
from tests.support.kwok import KwokCluster
from tests.support.openbao import InitResult, OpenBaoServer
from tests.support.stages import MakeContext

pytestmark = pytest.mark.integration


def test_initialises_unseals_stores_keys_and_reruns_as_noop(
    vault: OpenBaoServer, make_context: MakeContext
) -> None:
    ctx = make_context(
        vault.address, PLATFORM_VAULT_KEY_SHARES="5", PLATFORM_VAULT_KEY_THRESHOLD="3"
    )
    stage = VaultStage()
    assert not stage.check(ctx).done

    summary = stage.run(ctx)

    assert "initialised" in summary and "unsealed" in summary
    status = VaultApi(vault.address).status()
    assert status.initialized and not status.sealed and status.shares == 5 and status.threshold == 3
    path = ctx.state.secrets_dir / FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stored = json.loads(path.read_text())
    assert len(stored["unseal_keys_hex"]) == 5 and stored["root_token"]
    assert VaultApi(vault.address, stored["root_token"]).token_valid()
    assert stage.check(ctx).done

    started = time.monotonic()
    again = stage.run(ctx)
    assert "already initialised and unsealed" in again
    assert time.monotonic() - started < 3
    assert json.loads(path.read_text()) == stored  # nothing re-initialised


def test_sealed_vault_is_unsealed_from_stored_keys(
    vault: OpenBaoServer, make_context: MakeContext
) -> None:
    ctx = make_context(vault.address)
    VaultStage().run(ctx)
    vault.restart()
    assert vault.health()["sealed"] is True
    assert not VaultStage().check(ctx).done

    summary = VaultStage().run(ctx)

    assert "unsealed" in summary
    assert vault.health()["sealed"] is False


def test_initialised_vault_without_keys_stops_with_a_sentence(
    unsealed_vault: tuple[OpenBaoServer, InitResult], make_context: MakeContext
) -> None:
    server, _ = unsealed_vault
    server.restart()  # sealed, initialised by someone else: we have no keys
    ctx = make_context(server.address)

    with pytest.raises(PermanentError) as caught:
        VaultStage().run(ctx)

    message = str(caught.value)
    assert "initialised and sealed" in message and "no unseal keys are stored" in message
    assert "vault.unseal_keys_file" in caught.value.hint


def test_unseal_keys_file_setting_unseals_an_existing_vault(
    unsealed_vault: tuple[OpenBaoServer, InitResult], make_context: MakeContext, tmp_path: Path
) -> None:
    server, init = unsealed_vault
    server.restart()
    keys_file = tmp_path / "init.json"
    keys_file.write_text(
        json.dumps({"unseal_keys_hex": list(init.keys), "root_token": init.root_token})
    )
    ctx = make_context(server.address, PLATFORM_VAULT_UNSEAL_KEYS_FILE=str(keys_file))

    assert "unsealed" in VaultStage().run(ctx)
    assert server.health()["sealed"] is False


def test_wrong_keys_give_a_clear_error_without_the_keys(
    unsealed_vault: tuple[OpenBaoServer, InitResult], make_context: MakeContext, tmp_path: Path
) -> None:
    server, _ = unsealed_vault
    server.restart()
    wrong = ["ab" * 32, "cd" * 32]
    keys_file = tmp_path / "wrong.json"
    keys_file.write_text(json.dumps({"unseal_keys_hex": wrong}))
    ctx = make_context(server.address, PLATFORM_VAULT_UNSEAL_KEYS_FILE=str(keys_file))

    with pytest.raises(UnsealFailed) as caught:
        VaultStage().run(ctx)

    text = f"{caught.value} {caught.value.hint}"
    assert "rejected unseal key" in text and "do not belong to this Vault" in text
    assert not any(key in text for key in wrong)
    assert server.health()["sealed"] is True


def test_keys_are_also_stored_in_the_cluster_secret(
    vault: OpenBaoServer, make_context: MakeContext, cluster: KwokCluster
) -> None:
    ctx = make_context(vault.address, kubeconfig=cluster.kubeconfig, name="vt-secret")
    VaultStage().run(ctx)
    secret = json.loads(
        cluster.kubectl("get", "secret", "-n", "platform-vault", "vault-init", "-o", "json")
    )
    assert set(secret["data"]) == {"unseal-keys", "root-token", "key-threshold"}

    # The state file is lost; the Secret alone is enough to unseal after a restart.
    (ctx.state.secrets_dir / FILE_NAME).unlink()
    vault.restart()
    assert "unsealed" in VaultStage().run(ctx)
    assert (ctx.state.secrets_dir / FILE_NAME).exists()  # restored from the Secret

    # The unsealer reads the same Secret through the real API server.
    vault.restart()
    result = subprocess.run(
        [
            PLATFORM,
            "run",
            "unsealer",
            "--address",
            vault.address,
            "--secret",
            "vault-init",
            "--namespace",
            "platform-vault",
            "--kubeconfig",
            str(cluster.kubeconfig),
            "--once",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert (
        "unsealed Vault" in result.stderr and "Secret 'platform-vault/vault-init'" in result.stderr
    )
    assert vault.health()["sealed"] is False


def test_unsealer_process_unseals_after_restart_and_stops_on_sigterm(
    vault: OpenBaoServer, make_context: MakeContext, tmp_path: Path
) -> None:
    ctx = make_context(vault.address)
    VaultStage().run(ctx)
    keys_file = ctx.state.secrets_dir / FILE_NAME
    log = tmp_path / "unsealer.log"
    unsealer = launch("unsealer", ["--address", vault.address, "--keys-file", str(keys_file)], log)
    try:
        vault.restart()
        restarted = time.monotonic()
        processes.wait_for(
            lambda: vault.health().get("sealed") is False, timeout=15, what="the unsealer"
        )
        took = time.monotonic() - restarted
        assert took < 6, f"unsealed after {took:.1f}s"
        # And again: a second restart is handled the same way.
        vault.restart()
        processes.wait_for(lambda: vault.health().get("sealed") is False, timeout=15, what="again")
        # What it did is on its /metrics too (the shared program shell).
        assert unsealer.metrics()["platform_unsealer_unseals_total"] >= 2
    finally:
        code = unsealer.stop()
    assert code == 0
    text = log.read_text()
    assert "unsealed Vault" in text and "stopping" in text
    stored = json.loads(keys_file.read_text())
    for secret in [stored["root_token"], *stored["unseal_keys_hex"]]:
        assert secret not in text


def test_unsealer_with_missing_keys_file_says_so(vault: OpenBaoServer, tmp_path: Path) -> None:
    from tests.support.openbao import initialise_and_unseal

    initialise_and_unseal(vault)
    vault.restart()
    log = tmp_path / "unsealer.log"
    missing = tmp_path / "nope.json"
    result = subprocess.run(
        [
            PLATFORM,
            "run",
            "unsealer",
            "--address",
            vault.address,
            "--keys-file",
            str(missing),
            "--once",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ},
    )
    assert result.returncode == 1
    assert f"cannot read the unseal keys file {missing}" in result.stderr
    assert not log.exists()


def test_deploy_path_applies_valid_manifests(
    make_context: MakeContext, cluster: KwokCluster
) -> None:
    """Without vault.address the stage deploys OpenBao. kwok runs no containers, so only
    the apply (server-side, validated by the real API server) and the wait are real here."""
    from stacks.errors import WaitingError

    ctx = make_context("", kubeconfig=cluster.kubeconfig, name="vt-deploy")
    try:
        VaultStage()._deploy(ctx)
    except WaitingError as waiting:
        assert "StatefulSet 'platform-vault/openbao'" in str(waiting)
    for kind, name in [
        ("statefulset", "openbao"),
        ("service", "openbao"),
        ("ingress", "openbao"),
        ("deployment", "vault-unsealer"),
        ("serviceaccount", "openbao"),
        ("role", "vault-unsealer"),
    ]:
        cluster.kubectl("get", kind, "-n", "platform-vault", name)
    host = cluster.kubectl(
        "get", "ingress", "-n", "platform-vault", "openbao", "-o", "jsonpath={.spec.rules[0].host}"
    )
    assert host == f"vault.{ctx.settings.domain}"


def test_platform_vault_is_deployed_then_initialised_through_a_port_forward(
    vault: OpenBaoServer, make_context: MakeContext, cluster: KwokCluster
) -> None:
    """`--engine existing` without vault.address: the stage deploys OpenBao and reaches it
    through the Kubernetes API (no ingress needed). kwok runs no containers, so the pod's
    port 8200 is forwarded by kwok to the real OpenBao of this test: the apply, the wait
    for the StatefulSet, the tunnel, init, unseal and the keys Secret are all real."""
    from bootstrap.forwards import close_port_forwards
    from bootstrap.vault_access import access_mode
    from tests.support.stages import run_until_done

    ctx = make_context("", kubeconfig=cluster.kubeconfig, name="vt-forward")
    assert access_mode(ctx.settings) == "port-forward"
    stage = VaultStage()
    # The test cluster has no storage provisioner: a volume for the data claim, bound by
    # the real kube-controller-manager as a provisioner's would be.
    volume = "platform-vault-test-data"
    cluster.kubectl(
        "apply",
        "-f",
        "-",
        stdin=json.dumps(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": volume},
                "spec": {
                    "capacity": {"storage": "1Gi"},
                    "accessModes": ["ReadWriteOnce"],
                    "persistentVolumeReclaimPolicy": "Delete",
                    "hostPath": {"path": "/tmp/platform-vault-test-data"},
                    "claimRef": {"namespace": "platform-vault", "name": "data-openbao-0"},
                },
            }
        ),
    )
    try:
        with cluster.forward_to("platform-vault", 8200, vault.port):
            summary = run_until_done(stage, ctx)
            assert "initialised" in summary and "unsealed" in summary
            # The forward's own port dies with the bootstrap: the output says how a person
            # opens one.
            address = ctx.state.outputs()["vault_address"]
            assert address == (
                "http://127.0.0.1:8200 while "
                "`kubectl -n platform-vault port-forward svc/openbao 8200:8200` runs"
            )
            status = VaultApi(vault.address).status()  # the real server behind the tunnel
            assert status.initialized and not status.sealed
            secret = cluster.kubectl(
                "get", "secret", "-n", "platform-vault", "vault-init", "-o", "name"
            )
            assert secret.strip() == "secret/vault-init"
            assert stage.check(ctx).done
    finally:
        close_port_forwards()
        stage.remove(ctx)
        cluster.kubectl("delete", "pv", volume, "--ignore-not-found", "--wait=false", check=False)
